# Shared lookups and the per-broker layout. Resources are split by concern:
# s3.tf, iam.tf, security_groups.tf, instances.tf, dns.tf, config.tf.

data "aws_region" "current" {}
data "aws_partition" "current" {}

data "aws_subnet" "broker" {
  for_each = toset(var.subnet_ids)
  id       = each.value
}

data "aws_ssm_parameter" "ami" {
  count = var.ami_id == null ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.ami_architecture}"
}

locals {
  tags = merge(var.tags, {
    "tidelog:cluster" = var.name
    "managed-by"      = "terraform"
  })

  # Node ids are 1..broker_count. Keys are strings so for_each addresses
  # (aws_instance.broker["2"]) stay the same when brokers are added.
  node_ids = [for i in range(1, var.broker_count + 1) : tostring(i)]

  # Broker N lives in subnet (N-1) mod S: consecutive ids land in
  # different subnets, hence different zones when the subnets are.
  broker_subnet = { for id in local.node_ids : id => var.subnet_ids[(tonumber(id) - 1) % length(var.subnet_ids)] }

  # Fixed private IPs: broker N is the k-th broker of its subnet
  # (k = floor((N-1)/S)) and gets host private_ip_offset + k.
  broker_ip = {
    for id in local.node_ids : id => cidrhost(
      data.aws_subnet.broker[local.broker_subnet[id]].cidr_block,
      var.private_ip_offset + floor((tonumber(id) - 1) / length(var.subnet_ids))
    )
  }

  voter_count = coalesce(var.voter_count, var.broker_count >= 3 ? 3 : 1)
  # min() keeps rendering valid while the precondition on aws_instance.broker
  # reports voter_count > broker_count.
  voter_ids = [for i in range(1, min(local.voter_count, var.broker_count) + 1) : tostring(i)]

  ami_id = coalesce(var.ami_id, try(nonsensitive(data.aws_ssm_parameter.ami[0].value), null), "ami-unset")

  data_dir = "/var/lib/tidelog"
}
