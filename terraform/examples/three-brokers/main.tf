# Three Tidelog brokers spread over the zones of the given private subnets,
# with a new encrypted bucket. Apply with:
#
#   terraform init
#   terraform apply -var vpc_id=vpc-... -var 'subnet_ids=["subnet-a","subnet-b","subnet-c"]' \
#     -var 'allowed_client_cidr_blocks=["10.0.0.0/16"]'

provider "aws" {
  region = var.region

  default_tags {
    tags = { Project = "tidelog-example" }
  }
}

module "tidelog" {
  source = "../../modules/tidelog-cluster"

  name       = var.name
  vpc_id     = var.vpc_id
  subnet_ids = var.subnet_ids

  broker_count  = 3
  instance_type = "i4i.large"

  tidelog_release_url    = var.tidelog_release_url
  tidelog_release_sha256 = var.tidelog_release_sha256
  # The release is downloaded over HTTPS from outside S3 (through your NAT).
  egress_https_cidr_blocks = var.egress_https_cidr_blocks

  allowed_client_cidr_blocks  = var.allowed_client_cidr_blocks
  metrics_allowed_cidr_blocks = var.metrics_allowed_cidr_blocks

  route53_zone_id      = var.route53_zone_id
  force_destroy_bucket = var.force_destroy_bucket

  tidelog_settings = {
    log_format       = "json"
    log_retention_ms = 604800000 # 7 days
  }

  tags = { Environment = "example" }
}
