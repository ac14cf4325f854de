################################################################################
# Naming and placement
################################################################################

variable "name" {
  description = "Name of the cluster. Prefixes every resource name and tag (e.g. `orders` gives `orders-broker-1`)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.name))
    error_message = "name must be 2-24 characters of lower-case letters, digits and '-', start with a letter and not end with '-' (it is used in bucket, role and DNS names)."
  }
}

variable "vpc_id" {
  description = "ID of the VPC the brokers run in."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_ids" {
  description = "Private subnet IDs, ideally one per availability zone. Broker N goes to subnet_ids[(N-1) % length(subnet_ids)], so three subnets in three zones spread three brokers over three zones."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must hold at least one ID of the form subnet-0123abcd."
  }

  validation {
    condition     = length(distinct(var.subnet_ids)) == length(var.subnet_ids)
    error_message = "subnet_ids must not repeat a subnet."
  }
}

################################################################################
# Brokers
################################################################################

variable "broker_count" {
  description = "Number of brokers. Each gets a stable node id 1..broker_count that survives instance replacement, together with its subnet and private IP."
  type        = number
  default     = 3

  validation {
    condition     = var.broker_count >= 1 && var.broker_count <= 32 && floor(var.broker_count) == var.broker_count
    error_message = "broker_count must be a whole number from 1 to 32."
  }
}

variable "voter_count" {
  description = "How many brokers (node ids 1..voter_count) vote in the metadata quorum. Must be odd: an even quorum tolerates no more failures than the odd one below it but needs one more vote to commit. null picks 3 when broker_count >= 3, else 1. Must not exceed broker_count. The other brokers join as learners. Tidelog refuses to start a broker whose voters differ from those its cluster was formed with, so choose it before the first apply."
  type        = number
  default     = null

  validation {
    condition     = var.voter_count == null || try(var.voter_count >= 1 && var.voter_count % 2 == 1 && floor(var.voter_count) == var.voter_count, false)
    error_message = "voter_count must be an odd whole number (1, 3, 5, ...): an even number of voters tolerates no more failures than one fewer voter and makes every commit wait for an extra vote."
  }
}

variable "private_ip_offset" {
  description = "Broker N gets a fixed private IP: host number private_ip_offset + k of its subnet, where k counts the brokers before it in that subnet (so with 3 subnets brokers 1-3 get .10, 4-6 get .11 with the default). Pick a range nothing else in the subnets uses; an aws_ec2_subnet_cidr_reservation of type explicit keeps AWS from handing it out."
  type        = number
  default     = 10

  validation {
    condition     = var.private_ip_offset >= 4 && floor(var.private_ip_offset) == var.private_ip_offset
    error_message = "private_ip_offset must be a whole number of at least 4 (AWS reserves the first four addresses of every subnet)."
  }
}

variable "instance_type" {
  description = "EC2 instance type. The default, i4i.large (2 vCPU, 16 GiB, one 468 GB NVMe instance-store disk), keeps the log on local NVMe; use data_volume_type = \"ebs-gp3\" with types that have no instance store."
  type        = string
  default     = "i4i.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like an EC2 instance type, e.g. i4i.large or im4gn.large."
  }
}

variable "ami_id" {
  description = "AMI for the brokers. null uses the latest Amazon Linux 2023 AMI for ami_architecture from SSM. Later AMI changes are ignored so they never replace running brokers; roll them one broker at a time (see README)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "ami_id must be null or look like ami-0123abcd."
  }
}

variable "ami_architecture" {
  description = "CPU architecture of the AMI looked up when ami_id is null and of the release tarball: x86_64 (i4i, i3en, m6id ...) or arm64 (im4gn, is4gen, m7gd ...)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.ami_architecture)
    error_message = "ami_architecture must be x86_64 or arm64."
  }
}

variable "key_name" {
  description = "EC2 key pair for SSH, or null for none (prefer SSM Session Manager via additional_iam_policy_arns)."
  type        = string
  default     = null
}

variable "root_volume_size_gib" {
  description = "Size of the encrypted gp3 root volume in GiB (OS, binary, logs; the Tidelog data lives on the data volume)."
  type        = number
  default     = 20

  validation {
    condition     = var.root_volume_size_gib >= 8 && var.root_volume_size_gib <= 1024
    error_message = "root_volume_size_gib must be between 8 and 1024."
  }
}

variable "data_volume_type" {
  description = "Where the data directory lives: \"instance-store\" (default; the NVMe disks of the instance type, RAID-0 if several; lost on stop/start, the bucket keeps tiered data) or \"ebs-gp3\" (one gp3 volume per broker sized by ebs_data_volume)."
  type        = string
  default     = "instance-store"

  validation {
    condition     = contains(["instance-store", "ebs-gp3"], var.data_volume_type)
    error_message = "data_volume_type must be \"instance-store\" or \"ebs-gp3\"."
  }
}

variable "ebs_data_volume" {
  description = "Size and performance of the gp3 data volume, used only when data_volume_type = \"ebs-gp3\"."
  type = object({
    size_gib         = optional(number, 500)
    iops             = optional(number, 3000)
    throughput_mibps = optional(number, 250)
  })
  default = {}

  validation {
    condition = (
      var.ebs_data_volume.size_gib >= 1 && var.ebs_data_volume.size_gib <= 16384 &&
      var.ebs_data_volume.iops >= 3000 && var.ebs_data_volume.iops <= 16000 &&
      var.ebs_data_volume.throughput_mibps >= 125 && var.ebs_data_volume.throughput_mibps <= 1000
    )
    error_message = "ebs_data_volume: size_gib 1-16384, iops 3000-16000, throughput_mibps 125-1000 (gp3 limits)."
  }
}

variable "termination_protection" {
  description = "Enable EC2 termination protection on the brokers."
  type        = bool
  default     = false
}

################################################################################
# The tidelog binary
################################################################################

variable "tidelog_release_url" {
  description = "HTTPS URL of a Tidelog release tarball (containing a `tidelog` binary at any depth). Exactly one of tidelog_release_url and tidelog_release_s3_uri must be set. A non-S3 URL needs egress_https_cidr_blocks to reach it."
  type        = string
  default     = null

  validation {
    condition     = var.tidelog_release_url == null || can(regex("^https://[^ ]+$", var.tidelog_release_url))
    error_message = "tidelog_release_url must be an https:// URL without spaces."
  }
}

variable "tidelog_release_s3_uri" {
  description = "s3://bucket/key of a Tidelog release tarball. The broker role may read exactly this object. Exactly one of tidelog_release_url and tidelog_release_s3_uri must be set."
  type        = string
  default     = null

  validation {
    condition     = var.tidelog_release_s3_uri == null || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^ ]+$", var.tidelog_release_s3_uri))
    error_message = "tidelog_release_s3_uri must look like s3://bucket/path/tidelog.tar.gz."
  }
}

variable "tidelog_release_sha256" {
  description = "Expected SHA-256 of the release tarball; when set, a broker whose download does not match refuses to install it."
  type        = string
  default     = null

  validation {
    condition     = var.tidelog_release_sha256 == null || can(regex("^[0-9a-f]{64}$", var.tidelog_release_sha256))
    error_message = "tidelog_release_sha256 must be 64 lower-case hex digits."
  }
}

################################################################################
# Bucket (tiered storage)
################################################################################

variable "create_bucket" {
  description = "Create the bucket (true) or use the existing bucket named by bucket_name (false; its encryption, versioning and lifecycle are then yours to manage)."
  type        = bool
  default     = true
}

variable "bucket_name" {
  description = "Bucket name. With create_bucket = true, null lets AWS pick a unique name starting with \"<name>-tidelog-\"; with create_bucket = false it is required."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 characters: lower-case letters, digits, '.' and '-')."
  }
}

variable "object_prefix" {
  description = "Key prefix under which Tidelog keeps its objects. The broker role may touch nothing outside it."
  type        = string
  default     = "tidelog"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9!_.*'()-]*(/[A-Za-z0-9!_.*'()-]+)*$", var.object_prefix))
    error_message = "object_prefix must be a non-empty key prefix without leading or trailing '/' or empty segments, e.g. \"tidelog\" or \"prod/tidelog\"."
  }
}

variable "kms_key_arn" {
  description = "ARN of a KMS key for SSE-KMS bucket encryption (the broker role gets kms:Decrypt and kms:GenerateDataKey on it). null: SSE-S3 (AES256)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "bucket_versioning" {
  description = "Enable bucket versioning. Off by default: Tidelog writes each segment object once and deletes it when retention expires it; with versioning on, those deletes only add delete markers and expired data keeps costing money unless you add noncurrent-version expiry yourself. The manifest is protected by Tidelog's own fencing, not by versions."
  type        = bool
  default     = false
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads (left by a broker that died mid-upload) are aborted by the bucket lifecycle rule."
  type        = number
  default     = 2

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && var.abort_incomplete_multipart_days <= 365
    error_message = "abort_incomplete_multipart_days must be between 1 and 365."
  }
}

variable "force_destroy_bucket" {
  description = "Allow terraform destroy to delete a created bucket that still holds objects. Keep false in production."
  type        = bool
  default     = false
}

################################################################################
# Network access
################################################################################

variable "client_port" {
  description = "gRPC port clients connect to (Tidelog `listen`)."
  type        = number
  default     = 7070

  validation {
    condition     = var.client_port >= 1024 && var.client_port <= 65535
    error_message = "client_port must be between 1024 and 65535."
  }
}

variable "metrics_port" {
  description = "HTTP port for /metrics, /healthz and /readyz (Tidelog `http_listen`)."
  type        = number
  default     = 7071

  validation {
    condition     = var.metrics_port >= 1024 && var.metrics_port <= 65535
    error_message = "metrics_port must be between 1024 and 65535."
  }
}

variable "cluster_port" {
  description = "Inter-broker port (Tidelog `cluster_listen`, the metadata quorum); only brokers of this cluster may reach it."
  type        = number
  default     = 7072

  validation {
    condition     = var.cluster_port >= 1024 && var.cluster_port <= 65535
    error_message = "cluster_port must be between 1024 and 65535."
  }
}

variable "allowed_client_cidr_blocks" {
  description = "IPv4 CIDRs allowed to reach client_port. Empty by default: nothing outside the cluster can connect until you say who may."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.allowed_client_cidr_blocks : can(cidrhost(c, 0)) && can(regex("^[0-9.]+/[0-9]+$", c))])
    error_message = "allowed_client_cidr_blocks must hold IPv4 CIDRs such as 10.0.0.0/16."
  }
}

variable "allowed_client_security_group_ids" {
  description = "Security groups whose members may reach client_port."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.allowed_client_security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "allowed_client_security_group_ids must hold IDs of the form sg-0123abcd."
  }
}

variable "metrics_allowed_cidr_blocks" {
  description = "IPv4 CIDRs allowed to scrape metrics_port (e.g. the Prometheus subnet)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.metrics_allowed_cidr_blocks : can(cidrhost(c, 0)) && can(regex("^[0-9.]+/[0-9]+$", c))])
    error_message = "metrics_allowed_cidr_blocks must hold IPv4 CIDRs such as 10.0.5.0/24."
  }
}

variable "metrics_allowed_security_group_ids" {
  description = "Security groups whose members may scrape metrics_port."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.metrics_allowed_security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "metrics_allowed_security_group_ids must hold IDs of the form sg-0123abcd."
  }
}

variable "egress_https_cidr_blocks" {
  description = "IPv4 CIDRs the brokers may reach on 443 besides S3 (which is always allowed through the region's S3 prefix list). Needed only when tidelog_release_url points outside S3; empty by default."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.egress_https_cidr_blocks : can(cidrhost(c, 0)) && can(regex("^[0-9.]+/[0-9]+$", c))])
    error_message = "egress_https_cidr_blocks must hold IPv4 CIDRs such as 10.0.0.0/16."
  }
}

################################################################################
# DNS
################################################################################

variable "route53_zone_id" {
  description = "Private Route 53 hosted zone ID. When set, each broker gets <name>-<id>.<zone> and clients are given those names; null: brokers are addressed by private IP."
  type        = string
  default     = null

  validation {
    condition     = var.route53_zone_id == null || can(regex("^Z[0-9A-Z]+$", var.route53_zone_id))
    error_message = "route53_zone_id must look like Z0123456789ABCDEFGHIJ."
  }
}

variable "dns_ttl" {
  description = "TTL in seconds of the per-broker DNS records."
  type        = number
  default     = 60
}

################################################################################
# Tidelog settings and IAM extras
################################################################################

variable "tidelog_settings" {
  description = "Extra Tidelog settings merged into every broker's tidelog.toml, keyed as in the config file (e.g. { log_retention_ms = 604800000, log_format = \"json\" }). Values must be strings, numbers or booleans. Keys the module manages (data_dir, listen, http_listen, advertised_address, broker_id, object_store, node_id, cluster_listen, voters) are refused."
  type        = any
  default     = {}

  validation {
    condition     = can(keys(var.tidelog_settings)) && alltrue([for k, v in var.tidelog_settings : can(regex("^[a-z][a-z0-9_]*$", k)) && v != null && can(tostring(v))])
    error_message = "tidelog_settings must be an object of snake_case keys with string, number or bool values."
  }

  validation {
    condition     = length(setintersection(try(keys(var.tidelog_settings), []), ["data_dir", "listen", "http_listen", "advertised_address", "broker_id", "object_store", "node_id", "cluster_listen", "voters"])) == 0
    error_message = "tidelog_settings must not set data_dir, listen, http_listen, advertised_address, broker_id, object_store, node_id, cluster_listen or voters: the module sets them per broker."
  }
}

variable "enable_cluster_config" {
  description = "Run the brokers as one Tidelog cluster (default): tidelog.toml gets node_id, cluster_listen (the broker's private IP and cluster_port) and voters (brokers 1..voter_count); brokers above voter_count join as learners. false renders the pre-clustering configuration instead (broker_id, no cluster keys: N independent single brokers), only for Tidelog releases older than clustering, which refuse the cluster keys."
  type        = bool
  default     = true
}

variable "additional_iam_policy_arns" {
  description = "Extra managed policies to attach to the broker role (e.g. arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore for Session Manager). Empty by default: the role can do only what the broker needs."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
