output "bootstrap_brokers" {
  description = "Comma-separated host:port list of every broker's client address; give it to clients as --broker / bootstrap servers."
  value       = join(",", [for id in local.node_ids : "${local.broker_host[id]}:${var.client_port}"])
}

output "brokers" {
  description = "Each broker by node id: its id, instance, zone, subnet, private IP, DNS name (null without a zone) and client, metrics and inter-broker addresses."
  value = {
    for id in local.node_ids : id => {
      node_id           = tonumber(id)
      voter             = contains(local.voter_ids, id)
      instance_id       = aws_instance.broker[id].id
      subnet_id         = local.broker_subnet[id]
      availability_zone = data.aws_subnet.broker[local.broker_subnet[id]].availability_zone
      private_ip        = local.broker_ip[id]
      dns_name          = var.route53_zone_id == null ? null : local.broker_host[id]
      client_address    = "${local.broker_host[id]}:${var.client_port}"
      metrics_address   = "${local.broker_host[id]}:${var.metrics_port}"
      cluster_address   = "${local.broker_host[id]}:${var.cluster_port}"
    }
  }
}

output "voters" {
  description = "The metadata quorum's voters as written to every broker's voters key: id=host:cluster_port of brokers 1..voter_count joined by ','."
  value       = local.voters
}

output "bucket_name" {
  description = "Name of the tiered-storage bucket (created or given)."
  value       = local.bucket_name
}

output "bucket_arn" {
  description = "ARN of the tiered-storage bucket."
  value       = local.bucket_arn
}

output "object_prefix" {
  description = "Key prefix under which Tidelog keeps its objects."
  value       = var.object_prefix
}

output "object_store_urls" {
  description = "The object_store URL each broker is configured with, by node id."
  value       = local.object_store
}

output "security_group_id" {
  description = "ID of the brokers' security group; reference it from your own rules to let brokers reach other services."
  value       = aws_security_group.broker.id
}

output "security_group_ids" {
  description = "All security group IDs attached to the brokers."
  value       = [aws_security_group.broker.id]
}

output "iam_role_name" {
  description = "Name of the brokers' IAM role."
  value       = aws_iam_role.broker.name
}

output "iam_role_arn" {
  description = "ARN of the brokers' IAM role."
  value       = aws_iam_role.broker.arn
}

output "iam_instance_profile_name" {
  description = "Name of the brokers' instance profile."
  value       = aws_iam_instance_profile.broker.name
}

output "iam_policy_json" {
  description = "The inline policy of the broker role, for review."
  value       = local.broker_policy
}

output "broker_configs" {
  description = "Each broker's /etc/tidelog/tidelog.toml exactly as written to the instance, by node id."
  value       = local.tidelog_toml
}

output "systemd_units" {
  description = "Each broker's /etc/systemd/system/tidelog.service, by node id."
  value       = local.systemd_unit
}

output "user_data" {
  description = "Each broker's cloud-init user data exactly as given to EC2, by node id."
  value       = local.user_data
}
