# One instance per broker. Broker N always gets the same subnet and the
# same private IP (host private_ip_offset + k of its subnet, k = its rank
# in that subnet), so a replaced instance takes back its node id and its
# address, and every address is known at plan time.

resource "aws_instance" "broker" {
  for_each = local.broker_subnet

  ami                     = local.ami_id
  instance_type           = var.instance_type
  iam_instance_profile    = aws_iam_instance_profile.broker.name
  key_name                = var.key_name
  user_data               = local.user_data[each.key]
  disable_api_termination = var.termination_protection

  subnet_id              = each.value
  private_ip             = local.broker_ip[each.key]
  vpc_security_group_ids = [aws_security_group.broker.id]

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = var.root_volume_size_gib
    encrypted   = true
  }

  dynamic "ebs_block_device" {
    for_each = var.data_volume_type == "ebs-gp3" ? [var.ebs_data_volume] : []
    content {
      device_name           = "/dev/sdf"
      volume_type           = "gp3"
      volume_size           = ebs_block_device.value.size_gib
      iops                  = ebs_block_device.value.iops
      throughput            = ebs_block_device.value.throughput_mibps
      encrypted             = true
      delete_on_termination = true
    }
  }

  tags = merge(local.tags, {
    Name             = "${var.name}-broker-${each.key}"
    "tidelog:nodeId" = each.key
  })
  volume_tags = merge(local.tags, { Name = "${var.name}-broker-${each.key}" })

  lifecycle {
    # A new Amazon Linux release must not replace every broker at once;
    # roll AMIs one broker at a time (README, "Upgrading").
    ignore_changes = [ami]

    precondition {
      condition     = local.voter_count <= var.broker_count
      error_message = "voter_count (${local.voter_count}) must not exceed broker_count (${var.broker_count})."
    }
    precondition {
      condition     = (var.tidelog_release_url == null) != (var.tidelog_release_s3_uri == null)
      error_message = "Set exactly one of tidelog_release_url and tidelog_release_s3_uri."
    }
    precondition {
      condition     = var.create_bucket || var.bucket_name != null
      error_message = "bucket_name is required when create_bucket = false."
    }
  }
}
