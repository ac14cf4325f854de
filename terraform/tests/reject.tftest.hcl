# Inputs the module must refuse, each with a clear message.

mock_provider "aws" {
  mock_data "aws_subnet" {
    defaults = { cidr_block = "10.0.1.0/24", availability_zone = "us-east-1a" }
  }
}

variables {
  name                = "orders"
  vpc_id              = "vpc-0123abcd"
  subnet_ids          = ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"]
  bucket_name         = "orders-tidelog-test"
  tidelog_release_url = "https://example.com/tidelog.tar.gz"
}

run "reject_zero_brokers" {
  command = plan
  variables {
    broker_count = 0
  }
  expect_failures = [var.broker_count]
}

run "reject_even_voter_count" {
  command = plan
  variables {
    broker_count = 5
    voter_count  = 4
  }
  expect_failures = [var.voter_count]
}

run "reject_more_voters_than_brokers" {
  command = plan
  variables {
    broker_count = 3
    voter_count  = 5
  }
  expect_failures = [aws_instance.broker]
}

run "reject_bad_client_cidr" {
  command = plan
  variables {
    allowed_client_cidr_blocks = ["10.0.0.0/33"]
  }
  expect_failures = [var.allowed_client_cidr_blocks]
}

run "reject_cidr_without_mask" {
  command = plan
  variables {
    metrics_allowed_cidr_blocks = ["10.0.0.1"]
  }
  expect_failures = [var.metrics_allowed_cidr_blocks]
}

run "reject_two_release_sources" {
  command = plan
  variables {
    tidelog_release_s3_uri = "s3://releases-bucket/tidelog.tar.gz"
  }
  expect_failures = [aws_instance.broker]
}

run "reject_plain_http_release" {
  command = plan
  variables {
    tidelog_release_url = "http://example.com/tidelog.tar.gz"
  }
  expect_failures = [var.tidelog_release_url]
}

run "reject_managed_key_in_settings" {
  command = plan
  variables {
    tidelog_settings = { object_store = "file:///tmp/x" }
  }
  expect_failures = [var.tidelog_settings]
}

run "reject_prefix_with_slashes" {
  command = plan
  variables {
    object_prefix = "/tidelog/"
  }
  expect_failures = [var.object_prefix]
}

run "reject_reserved_ip_offset" {
  command = plan
  variables {
    private_ip_offset = 2
  }
  expect_failures = [var.private_ip_offset]
}
