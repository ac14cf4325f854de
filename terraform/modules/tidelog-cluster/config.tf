# What each broker runs: tidelog.toml (today's keys), cluster.toml (the
# cluster keys node_id/cluster_listen/voters of the clustering interface),
# the environment file, the systemd unit and the cloud-init user data.

locals {
  # The address other machines use for broker N: its DNS name when a zone
  # is given, else the fixed private IP of its network interface.
  broker_host = {
    for id in local.node_ids : id => (
      var.route53_zone_id == null
      ? local.broker_ip[id]
      : "${var.name}-${id}.${trimsuffix(data.aws_route53_zone.this[0].name, ".")}"
    )
  }

  voters = join(",", [for id in local.voter_ids : "${id}=${local.broker_host[id]}:${var.cluster_port}"])

  # Today's brokers do not cluster: each is an independent single broker,
  # so each gets its own prefix below object_prefix (two brokers sharing a
  # manifest would fence each other). With the cluster keys on, all brokers
  # share object_prefix as the clustering interface expects.
  object_store = {
    for id in local.node_ids : id => (
      var.enable_cluster_config
      ? "s3://${local.bucket_name}/${var.object_prefix}"
      : "s3://${local.bucket_name}/${var.object_prefix}/broker-${id}"
    )
  }

  base_settings = {
    for id in local.node_ids : id => merge(var.tidelog_settings, {
      data_dir           = "${local.data_dir}/data"
      listen             = "0.0.0.0:${var.client_port}"
      http_listen        = "0.0.0.0:${var.metrics_port}"
      advertised_address = "${local.broker_host[id]}:${var.client_port}"
      broker_id          = tonumber(id)
      object_store       = local.object_store[id]
    })
  }

  cluster_settings = {
    for id in local.node_ids : id => {
      node_id        = tonumber(id)
      cluster_listen = "0.0.0.0:${var.cluster_port}"
      voters         = local.voters
    }
  }

  cluster_toml = {
    for id in local.node_ids : id => templatefile("${path.module}/templates/tidelog.toml.tftpl", {
      header          = "Cluster keys of node ${id} (clustering interface: node_id, cluster_listen, voters).\n# ${var.enable_cluster_config ? "Also written into tidelog.toml (enable_cluster_config = true)." : "Not read by today's tidelog, which refuses unknown keys; set enable_cluster_config = true once clustering ships."}"
      settings        = local.cluster_settings[id]
      cluster         = {}
      include_cluster = false
    })
  }

  tidelog_toml = {
    for id in local.node_ids : id => templatefile("${path.module}/templates/tidelog.toml.tftpl", {
      header = "tidelog.toml of broker ${id} in cluster ${var.name}. Written by the tidelog-cluster Terraform module; edit the module inputs, not this file."
      # Two separate maps: a conditional between them would unify their
      # types and turn every number into a string.
      settings        = local.base_settings[id]
      cluster         = local.cluster_settings[id]
      include_cluster = var.enable_cluster_config
    })
  }

  tidelog_env = join("\n", compact([
    "AWS_REGION=${data.aws_region.current.name}",
    "RUST_LOG=info",
    "",
  ]))

  systemd_unit = {
    for id in local.node_ids : id => templatefile("${path.module}/templates/tidelog.service.tftpl", {
      node_id  = id
      data_dir = local.data_dir
    })
  }

  setup_script = templatefile("${path.module}/templates/setup.sh.tftpl", {
    data_dir         = local.data_dir
    data_volume_type = var.data_volume_type
    release_url      = var.tidelog_release_url == null ? "" : var.tidelog_release_url
    release_s3_uri   = var.tidelog_release_s3_uri == null ? "" : var.tidelog_release_s3_uri
    release_sha256   = var.tidelog_release_sha256 == null ? "" : var.tidelog_release_sha256
    region           = data.aws_region.current.name
  })

  user_data = {
    for id in local.node_ids : id => join("\n", [
      "#cloud-config",
      yamlencode({
        write_files = [
          { path = "/etc/tidelog/tidelog.toml", permissions = "0644", owner = "root:root", content = local.tidelog_toml[id] },
          { path = "/etc/tidelog/cluster.toml", permissions = "0644", owner = "root:root", content = local.cluster_toml[id] },
          { path = "/etc/tidelog/tidelog.env", permissions = "0644", owner = "root:root", content = local.tidelog_env },
          { path = "/etc/systemd/system/tidelog.service", permissions = "0644", owner = "root:root", content = local.systemd_unit[id] },
          { path = "/usr/local/sbin/tidelog-setup", permissions = "0755", owner = "root:root", content = local.setup_script },
        ]
        runcmd = [
          ["/usr/local/sbin/tidelog-setup"],
        ]
      })
    ])
  }
}
