# Per-broker private DNS names (<name>-<id>.<zone>) when a zone is given.
# They point at the brokers' fixed interface IPs, so they never change.

data "aws_route53_zone" "this" {
  count   = var.route53_zone_id == null ? 0 : 1
  zone_id = var.route53_zone_id
}

resource "aws_route53_record" "broker" {
  for_each = var.route53_zone_id == null ? {} : local.broker_subnet

  zone_id = var.route53_zone_id
  name    = local.broker_host[each.key]
  type    = "A"
  ttl     = var.dns_ttl
  records = [local.broker_ip[each.key]]
}
