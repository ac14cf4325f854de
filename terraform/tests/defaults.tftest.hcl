# Plan-only checks of the module with every AWS call mocked: layout, node
# ids, IAM scope, network exposure and encryption with default inputs.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef0" }
  }
  mock_data "aws_ec2_managed_prefix_list" {
    defaults = { id = "pl-63a5400a" }
  }
}

override_data {
  target = data.aws_subnet.broker["subnet-0aaa"]
  values = { availability_zone = "us-east-1a", cidr_block = "10.0.1.0/24" }
}
override_data {
  target = data.aws_subnet.broker["subnet-0bbb"]
  values = { availability_zone = "us-east-1b", cidr_block = "10.0.2.0/24" }
}
override_data {
  target = data.aws_subnet.broker["subnet-0ccc"]
  values = { availability_zone = "us-east-1c", cidr_block = "10.0.3.0/24" }
}

variables {
  name                = "orders"
  vpc_id              = "vpc-0123abcd"
  subnet_ids          = ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"]
  bucket_name         = "orders-tidelog-test"
  tidelog_release_url = "https://example.com/tidelog.tar.gz"
}

run "three_brokers_spread_over_three_zones" {
  command = plan

  assert {
    condition     = length(aws_instance.broker) == 3
    error_message = "Expected 3 brokers by default."
  }
  assert {
    condition     = [for id in ["1", "2", "3"] : aws_instance.broker[id].private_ip] == ["10.0.1.10", "10.0.2.10", "10.0.3.10"]
    error_message = "Broker N gets the fixed IP .10 of its subnet."
  }
  assert {
    condition     = output.bootstrap_brokers == "10.0.1.10:7070,10.0.2.10:7070,10.0.3.10:7070"
    error_message = "The bootstrap string lists every broker's client address."
  }
  assert {
    condition     = toset(keys(aws_instance.broker)) == toset(["1", "2", "3"])
    error_message = "Node ids must be 1..3."
  }
  assert {
    condition     = length(distinct([for id, n in aws_instance.broker : n.subnet_id])) == 3
    error_message = "Three brokers must land in three different subnets."
  }
  assert {
    condition     = length(distinct([for id, b in output.brokers : b.availability_zone])) == 3
    error_message = "Three brokers must land in three different availability zones."
  }
  assert {
    condition     = [for id in ["1", "2", "3"] : output.brokers[id].node_id] == [1, 2, 3]
    error_message = "brokers output must carry node ids 1, 2, 3."
  }
}

run "cluster_keys_written_into_each_broker_config" {
  command = plan

  assert {
    condition     = alltrue([for id in ["1", "2", "3"] : strcontains(output.broker_configs[id], "\nnode_id = ${id}\n")])
    error_message = "tidelog.toml of broker N must say node_id = N."
  }
  assert {
    condition     = alltrue([for id in ["1", "2", "3"] : !strcontains(output.broker_configs[id], "broker_id")])
    error_message = "Clustered brokers carry node_id, not its older name broker_id."
  }
  assert {
    condition     = [for id in ["1", "2", "3"] : strcontains(output.broker_configs[id], "\ncluster_listen = \"10.0.${id}.10:7072\"\n")] == [true, true, true]
    error_message = "cluster_listen must bind the broker's own private IP on the cluster port (it is also the address peers are told)."
  }
  assert {
    condition     = output.voters == "1=10.0.1.10:7072,2=10.0.2.10:7072,3=10.0.3.10:7072"
    error_message = "Three brokers give three voters id=ip:7072."
  }
  assert {
    condition     = alltrue([for id in ["1", "2", "3"] : strcontains(output.broker_configs[id], "\nvoters = \"1=10.0.1.10:7072,2=10.0.2.10:7072,3=10.0.3.10:7072\"\n")])
    error_message = "Every broker's tidelog.toml must carry the same voters."
  }
  assert {
    condition     = alltrue([for id in ["1", "2", "3"] : strcontains(output.broker_configs[id], "\nadvertised_address = \"10.0.${id}.10:7070\"\n") && strcontains(output.broker_configs[id], "\nlisten = \"0.0.0.0:7070\"\n")])
    error_message = "Clients are told the broker's private IP and client port; the client listener binds every interface."
  }
  assert {
    condition     = alltrue([for id in ["1", "2", "3"] : strcontains(output.broker_configs[id], "object_store = \"s3://orders-tidelog-test/tidelog/broker-${id}\"")])
    error_message = "Each broker of the cluster keeps its own prefix under object_prefix."
  }
  assert {
    condition     = alltrue([for id in ["1", "2", "3"] : strcontains(aws_instance.broker[id].user_data, "/etc/tidelog/tidelog.toml") && !strcontains(aws_instance.broker[id].user_data, "/etc/tidelog/cluster.toml") && startswith(aws_instance.broker[id].user_data, "#cloud-config\n")])
    error_message = "User data must be cloud-config writing /etc/tidelog/tidelog.toml (and no separate cluster.toml)."
  }
}

run "iam_policy_scoped_to_bucket_and_prefix" {
  command = plan

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.broker.policy).Statement : s.Resource])) == toset([
      "arn:aws:s3:::orders-tidelog-test",
      "arn:aws:s3:::orders-tidelog-test/tidelog/*",
    ])
    error_message = "The broker policy may name only the bucket and bucket/prefix/*."
  }
  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.broker.policy).Statement : s.Action])) == toset([
      "s3:ListBucket", "s3:ListBucketMultipartUploads",
      "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    ])
    error_message = "The broker policy may allow only list, get, put, delete and multipart actions."
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.broker.policy).Statement :
      s.Effect == "Allow" && !anytrue([for a in flatten([s.Action]) : strcontains(a, "*")])
    ])
    error_message = "No wildcard actions in the broker policy."
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.broker.policy).Statement :
      s.Resource != ["arn:aws:s3:::orders-tidelog-test"] || try(s.Condition.StringLike["s3:prefix"], null) == ["tidelog", "tidelog/*"]
    ])
    error_message = "Listing the bucket must be limited to the prefix."
  }
  assert {
    condition     = length(aws_iam_role_policy_attachment.additional) == 0
    error_message = "No managed policies are attached by default."
  }
}

run "no_rule_open_to_the_world_by_default" {
  command = plan

  assert {
    condition     = alltrue([for k, r in aws_vpc_security_group_ingress_rule.broker : r.cidr_ipv4 != "0.0.0.0/0"])
    error_message = "No ingress rule may be open to 0.0.0.0/0 by default."
  }
  assert {
    condition     = length(aws_vpc_security_group_egress_rule.https) == 0
    error_message = "No HTTPS egress to CIDRs by default (S3 goes through its prefix list)."
  }
  assert {
    condition     = toset(keys(aws_vpc_security_group_ingress_rule.broker)) == toset(["self-client", "self-cluster"])
    error_message = "By default only brokers may reach brokers."
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.broker["self-cluster"].from_port == 7072 && aws_vpc_security_group_ingress_rule.broker["self-cluster"].to_port == 7072
    error_message = "Brokers reach each other on the inter-broker port only."
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.to_brokers["cluster"].from_port == 7072 && aws_vpc_security_group_egress_rule.to_brokers["cluster"].to_port == 7072 && aws_vpc_security_group_egress_rule.to_brokers["client"].from_port == 7070
    error_message = "Brokers may connect to each other on the cluster port (metadata quorum) and the client port (forwarded requests)."
  }
}

run "encryption_on_everywhere" {
  command = plan

  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.this[0].rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    error_message = "The bucket must default to SSE-S3."
  }
  assert {
    condition = (
      aws_s3_bucket_public_access_block.this[0].block_public_acls &&
      aws_s3_bucket_public_access_block.this[0].block_public_policy &&
      aws_s3_bucket_public_access_block.this[0].ignore_public_acls &&
      aws_s3_bucket_public_access_block.this[0].restrict_public_buckets
    )
    error_message = "Public access must be blocked."
  }
  assert {
    condition     = alltrue([for id, i in aws_instance.broker : one(i.root_block_device).encrypted])
    error_message = "Root volumes must be encrypted."
  }
  assert {
    condition     = length(aws_s3_bucket_versioning.this) == 0
    error_message = "Versioning is off by default."
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.this[0].rule : r if r.id == "abort-incomplete-multipart-uploads"]).abort_incomplete_multipart_upload[0].days_after_initiation == 2
    error_message = "A lifecycle rule must abort incomplete multipart uploads."
  }
  assert {
    condition     = alltrue([for id, i in aws_instance.broker : one(i.metadata_options).http_tokens == "required"])
    error_message = "Instances must require IMDSv2."
  }
}

run "sse_kms_option" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  }

  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.this[0].rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "kms_key_arn must switch the bucket to SSE-KMS."
  }
  assert {
    condition     = contains(flatten([for s in jsondecode(aws_iam_role_policy.broker.policy).Statement : s.Resource]), "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    error_message = "With SSE-KMS the broker may use exactly that key."
  }
}
