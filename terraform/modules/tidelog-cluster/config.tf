# What each broker runs: tidelog.toml (every key, the cluster keys
# node_id/cluster_listen/voters included), the environment file, the
# systemd unit and the cloud-init user data.

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

  # id=host:cluster_port of brokers 1..voter_count, each voter's
  # cluster_listen as its peers reach it (DNS name or private IP).
  voters = join(",", [for id in local.voter_ids : "${id}=${local.broker_host[id]}:${var.cluster_port}"])

  # Every broker keeps its own prefix below object_prefix, clustered or
  # not. A partition lives on one broker (no replication, never moved), its
  # manifest names that broker as writer, and each broker rewrites
  # cluster.json at the root of its prefix from its own topics: a shared
  # prefix would have the brokers overwrite each other's snapshot, and
  # `tidelog restore` of one broker needs exactly that broker's objects.
  object_store = {
    for id in local.node_ids : id => "s3://${local.bucket_name}/${var.object_prefix}/broker-${id}"
  }

  base_settings = {
    for id in local.node_ids : id => merge(var.tidelog_settings, {
      data_dir           = "${local.data_dir}/data"
      listen             = "0.0.0.0:${var.client_port}"
      http_listen        = "0.0.0.0:${var.metrics_port}"
      advertised_address = "${local.broker_host[id]}:${var.client_port}"
      object_store       = local.object_store[id]
    })
  }

  # The cluster keys. cluster_listen binds the broker's fixed private IP
  # rather than 0.0.0.0: Tidelog also announces it as the broker's cluster
  # address (a learner's address in the quorum is its cluster_listen), so
  # it must be an address peers can reach. Pre-clustering releases get the
  # older broker_id instead (enable_cluster_config = false). Indexing a
  # tuple picks one of the two objects; a conditional would unify their
  # types into map(string) and quote the numbers.
  id_settings = {
    for id in local.node_ids : id => [
      {
        node_id        = tonumber(id)
        cluster_listen = "${local.broker_ip[id]}:${var.cluster_port}"
        voters         = local.voters
      },
      { broker_id = tonumber(id) },
    ][var.enable_cluster_config ? 0 : 1]
  }

  tidelog_toml = {
    for id in local.node_ids : id => templatefile("${path.module}/templates/tidelog.toml.tftpl", {
      header   = "tidelog.toml of broker ${id} in cluster ${var.name}. Written by the tidelog-cluster Terraform module; edit the module inputs, not this file."
      settings = merge(local.base_settings[id], local.id_settings[id])
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
