variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Cluster name."
  type        = string
  default     = "tidelog-example"
}

variable "vpc_id" {
  description = "Existing VPC to deploy into."
  type        = string
}

variable "subnet_ids" {
  description = "Three private subnets of vpc_id, one per availability zone."
  type        = list(string)
}

variable "tidelog_release_url" {
  description = "HTTPS URL of the Tidelog release tarball for x86_64 Linux."
  type        = string
  default     = "https://github.com/tidelog/tidelog/releases/download/v0.1.0/tidelog-x86_64-unknown-linux-gnu.tar.gz"
}

variable "tidelog_release_sha256" {
  description = "SHA-256 of the release tarball (recommended)."
  type        = string
  default     = null
}

variable "egress_https_cidr_blocks" {
  description = "Where brokers may connect on 443 to download the release (S3 is always allowed). Narrow it if your egress proxy has fixed addresses."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "allowed_client_cidr_blocks" {
  description = "CIDRs of the clients (producers, consumers) that may reach the brokers."
  type        = list(string)
  default     = []
}

variable "metrics_allowed_cidr_blocks" {
  description = "CIDRs of Prometheus scrapers."
  type        = list(string)
  default     = []
}

variable "route53_zone_id" {
  description = "Private hosted zone for per-broker DNS names, or null."
  type        = string
  default     = null
}

variable "force_destroy_bucket" {
  description = "Let terraform destroy delete the bucket with its objects (for throwaway clusters)."
  type        = bool
  default     = false
}
