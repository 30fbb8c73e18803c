# An internal network load balancer: the stable bootstrap address of the cluster. It only
# starts a client's first connection; the Metadata response then points the client at every
# broker's own address (see docs/DEPLOY.md, "How clients connect"). It passes TCP through, so
# TLS ends at the brokers, and a broker certificate must also name the bootstrap address.

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:Network load balancers write access logs only for TLS listeners; these are TCP listeners (TLS ends at the brokers).
  name                             = "${var.name}-strato"
  internal                         = true
  load_balancer_type               = "network"
  subnets                          = var.subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.nlb_deletion_protection
  tags                             = local.tags
}

locals {
  # Kafka listeners (security.tf) are routed only to brokers whose metadata store answers
  # (/ready); the HTTP port to any broker that is up (/health), so that metrics stay reachable
  # during an etcd outage.
  nlb_ports = merge(
    { for key, listener in local.kafka_listeners : key => { port = listener.port, health_path = "/ready" } },
    { http = { port = 9644, health_path = "/health" } },
  )
}

resource "aws_lb_target_group" "broker" {
  for_each = local.nlb_ports

  name                 = "${var.name}-${each.key}"
  vpc_id               = var.vpc_id
  port                 = each.value.port
  protocol             = "TCP"
  target_type          = "instance"
  deregistration_delay = 30
  # Connections reach brokers from the load balancer's address (allowed by its security group),
  # so a client on a broker instance can use the bootstrap address too: with the client's own
  # address kept, the load balancer drops connections routed back to their source instance.
  preserve_client_ip = false

  health_check {
    protocol            = "HTTP"
    port                = "9644"
    path                = each.value.health_path
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

resource "aws_lb_listener" "broker" {
  for_each = local.nlb_ports

  load_balancer_arn = aws_lb.this.arn
  port              = each.value.port
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.broker[each.key].arn
  }

  tags = local.tags
}

# A friendlier bootstrap name in a Route 53 private hosted zone (var.bootstrap_dns).
resource "aws_route53_record" "bootstrap" {
  count = var.bootstrap_dns == null ? 0 : 1

  zone_id = var.bootstrap_dns.zone_id
  name    = var.bootstrap_dns.name
  type    = "A"

  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = false
  }
}
