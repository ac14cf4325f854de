# One security group for the brokers. Ingress: clients -> client_port from
# the CIDRs/groups you list, brokers <-> brokers on client_port and
# cluster_port among themselves only, scrapers -> metrics_port. Egress:
# other brokers, S3 through the region's prefix list, and 443 to
# egress_https_cidr_blocks (empty by default). No rule is open to
# 0.0.0.0/0 unless you pass it in.

data "aws_ec2_managed_prefix_list" "s3" {
  name = "com.amazonaws.${data.aws_region.current.name}.s3"
}

resource "aws_security_group" "broker" {
  name_prefix = "${var.name}-broker-"
  description = "Tidelog brokers of cluster ${var.name}"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-broker" })

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  ingress_rules = merge(
    { for c in var.allowed_client_cidr_blocks : "client-cidr-${c}" => { port = var.client_port, cidr = c, sg = null, desc = "Tidelog clients" } },
    { for s in var.allowed_client_security_group_ids : "client-sg-${s}" => { port = var.client_port, cidr = null, sg = s, desc = "Tidelog clients" } },
    { for c in var.metrics_allowed_cidr_blocks : "metrics-cidr-${c}" => { port = var.metrics_port, cidr = c, sg = null, desc = "Tidelog metrics scrapers" } },
    { for s in var.metrics_allowed_security_group_ids : "metrics-sg-${s}" => { port = var.metrics_port, cidr = null, sg = s, desc = "Tidelog metrics scrapers" } },
    {
      "self-client"  = { port = var.client_port, cidr = null, sg = aws_security_group.broker.id, desc = "Brokers to brokers (client port)" }
      "self-cluster" = { port = var.cluster_port, cidr = null, sg = aws_security_group.broker.id, desc = "Brokers to brokers (inter-broker port)" }
    },
  )
}

resource "aws_vpc_security_group_ingress_rule" "broker" {
  for_each = local.ingress_rules

  security_group_id            = aws_security_group.broker.id
  description                  = each.value.desc
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.sg
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "to_brokers" {
  for_each = { client = var.client_port, cluster = var.cluster_port }

  security_group_id            = aws_security_group.broker.id
  description                  = "Brokers to brokers (${each.key} port)"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.broker.id
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "to_s3" {
  security_group_id = aws_security_group.broker.id
  description       = "HTTPS to S3 (tiered storage, release tarball)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = data.aws_ec2_managed_prefix_list.s3.id
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "https" {
  for_each = toset(var.egress_https_cidr_blocks)

  security_group_id = aws_security_group.broker.id
  description       = "HTTPS (release download)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
  tags              = local.tags
}
