# Plan-only checks of the optional paths: more brokers than subnets, EBS
# data volumes, DNS names, learners, the cluster keys switched off, given
# CIDRs.

mock_provider "aws" {
  mock_data "aws_subnet" {
    defaults = { cidr_block = "10.0.1.0/24", availability_zone = "us-east-1a" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef0" }
  }
  mock_data "aws_route53_zone" {
    defaults = { name = "internal.example." }
  }
}

variables {
  name                   = "events"
  vpc_id                 = "vpc-0123abcd"
  subnet_ids             = ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"]
  bucket_name            = "events-tidelog-test"
  tidelog_release_s3_uri = "s3://releases-bucket/tidelog/v0.1.0/tidelog.tar.gz"
}

run "five_brokers_wrap_around_the_subnets" {
  command = plan

  variables {
    broker_count = 5
    voter_count  = 5
  }

  assert {
    condition     = [for id in ["1", "2", "3", "4", "5"] : aws_instance.broker[id].subnet_id] == ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc", "subnet-0aaa", "subnet-0bbb"]
    error_message = "Broker N goes to subnet (N-1) mod 3."
  }
  assert {
    condition     = [for id in ["1", "2", "3", "4", "5"] : aws_instance.broker[id].private_ip] == ["10.0.1.10", "10.0.1.10", "10.0.1.10", "10.0.1.11", "10.0.1.11"]
    error_message = "The second broker of a subnet gets the next host (all mock subnets share one CIDR here)."
  }
  assert {
    condition     = length(split(",", output.voters)) == 5
    error_message = "voter_count = 5 gives five voters."
  }
}

run "default_voters_are_three_of_five" {
  command = plan

  variables {
    broker_count = 5
  }

  assert {
    condition     = [for v in split(",", output.voters) : split("=", v)[0]] == ["1", "2", "3"]
    error_message = "By default brokers 1-3 vote."
  }
  assert {
    condition     = alltrue([for id in ["4", "5"] : strcontains(output.broker_configs[id], "\nnode_id = ${id}\n") && strcontains(output.broker_configs[id], "\nvoters = \"${output.voters}\"\n") && !strcontains(output.voters, "${id}=")])
    error_message = "Brokers 4 and 5 get the voters 1-3 without themselves, so they join as learners."
  }
  assert {
    condition     = strcontains(output.broker_configs["4"], "\ncluster_listen = \"10.0.1.11:7072\"\n")
    error_message = "A learner's cluster_listen is its own reachable private IP (the quorum contacts it there)."
  }
}

run "dns_names_per_broker" {
  command = plan

  variables {
    route53_zone_id = "Z0123456789ABCDEFGHIJ"
  }

  assert {
    condition     = length(aws_route53_record.broker) == 3
    error_message = "One DNS record per broker."
  }
  assert {
    condition     = output.bootstrap_brokers == "events-1.internal.example:7070,events-2.internal.example:7070,events-3.internal.example:7070"
    error_message = "The bootstrap string must use the DNS names."
  }
  assert {
    condition     = output.voters == "1=events-1.internal.example:7072,2=events-2.internal.example:7072,3=events-3.internal.example:7072"
    error_message = "Voters must use the DNS names and the cluster port."
  }
  assert {
    condition     = strcontains(output.broker_configs["2"], "\nadvertised_address = \"events-2.internal.example:7070\"\n") && strcontains(output.broker_configs["2"], "\ncluster_listen = \"10.0.1.10:7072\"\n")
    error_message = "Clients are told the DNS name; cluster_listen still binds the private IP."
  }
}

run "ebs_gp3_data_volume" {
  command = plan

  variables {
    instance_type    = "m7i.large"
    data_volume_type = "ebs-gp3"
    ebs_data_volume  = { size_gib = 1000, iops = 6000 }
  }

  assert {
    condition     = alltrue([for id, i in aws_instance.broker : length(i.ebs_block_device) == 1 && one(i.ebs_block_device).volume_type == "gp3" && one(i.ebs_block_device).volume_size == 1000 && one(i.ebs_block_device).iops == 6000 && one(i.ebs_block_device).throughput == 250 && one(i.ebs_block_device).encrypted])
    error_message = "ebs-gp3 must give each broker one encrypted gp3 data volume with the given size and IOPS."
  }
}

run "release_from_s3_is_the_only_extra_grant" {
  command = plan

  assert {
    condition     = contains(flatten([for s in jsondecode(aws_iam_role_policy.broker.policy).Statement : s.Resource]), "arn:aws:s3:::releases-bucket/tidelog/v0.1.0/tidelog.tar.gz")
    error_message = "The role must be able to read exactly the release object."
  }
  assert {
    condition     = length(jsondecode(aws_iam_role_policy.broker.policy).Statement) == 3
    error_message = "Bucket list, bucket objects and the release object: nothing else."
  }
}

run "settings_merged_with_their_types" {
  command = plan

  variables {
    tidelog_settings = { log_retention_ms = 86400000, log_format = "json" }
  }

  assert {
    condition     = strcontains(output.broker_configs["1"], "log_retention_ms = 86400000\n") && strcontains(output.broker_configs["1"], "log_format = \"json\"\n") && strcontains(output.broker_configs["1"], "\nnode_id = 1\n")
    error_message = "tidelog_settings must be merged with their TOML types (number unquoted, string quoted) beside the cluster keys."
  }
}

run "cluster_keys_switched_off_for_pre_clustering_releases" {
  command = plan

  variables {
    enable_cluster_config = false
  }

  assert {
    condition     = alltrue([for id in ["1", "2", "3"] : strcontains(output.broker_configs[id], "\nbroker_id = ${id}\n") && !strcontains(output.broker_configs[id], "node_id") && !strcontains(output.broker_configs[id], "cluster_listen") && !strcontains(output.broker_configs[id], "voters")])
    error_message = "enable_cluster_config = false must write broker_id and no cluster keys."
  }
  assert {
    condition     = strcontains(output.broker_configs["2"], "object_store = \"s3://events-tidelog-test/tidelog/broker-2\"\n")
    error_message = "Independent brokers keep their own prefix too."
  }
}

run "given_cidrs_only" {
  command = plan

  variables {
    allowed_client_cidr_blocks  = ["10.20.0.0/16"]
    metrics_allowed_cidr_blocks = ["10.30.1.0/24"]
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.broker["client-cidr-10.20.0.0/16"].from_port == 7070
    error_message = "Client CIDRs reach the client port."
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.broker["metrics-cidr-10.30.1.0/24"].from_port == 7071
    error_message = "Scrapers reach the metrics port."
  }
}
