output "bootstrap_brokers" {
  description = "Give this to clients (tidelog --broker, SDK bootstrap)."
  value       = module.tidelog.bootstrap_brokers
}

output "brokers" {
  description = "Each broker's node id, instance, zone and addresses."
  value       = module.tidelog.brokers
}

output "bucket_name" {
  description = "The tiered-storage bucket."
  value       = module.tidelog.bucket_name
}

output "object_prefix" {
  description = "Key prefix of Tidelog's objects in the bucket."
  value       = module.tidelog.object_prefix
}

output "security_group_id" {
  description = "The brokers' security group."
  value       = module.tidelog.security_group_id
}

output "iam_role_arn" {
  description = "The brokers' IAM role."
  value       = module.tidelog.iam_role_arn
}

output "broker_configs" {
  description = "Each broker's tidelog.toml as written."
  value       = module.tidelog.broker_configs
}

output "systemd_units" {
  description = "Each broker's systemd unit."
  value       = module.tidelog.systemd_units
}

output "user_data" {
  description = "Each broker's cloud-init user data."
  value       = module.tidelog.user_data
}
