# Security groups. Clients reach the Kafka listeners (var.listener_port, 9092 by default, and
# var.plaintext_listener_port) and metrics (9644) from var.client_cidrs and var.metrics_cidrs
# only, on the load balancer and on each broker (clients connect to every broker at its
# advertised address). etcd is reachable only from the brokers (and
# var.etcd_client_security_group_ids); its members talk to each other on 2380. Nothing accepts
# SSH: operators use SSM Session Manager. Egress is HTTPS (S3, ECR, CloudWatch, SSM, Secrets
# Manager, image registries) and the ports of the other components; traffic to the VPC's DNS
# resolver, the instance metadata service and the time service is never filtered by security
# groups.

resource "aws_security_group" "nlb" {
  name        = "${var.name}-strato-nlb"
  description = "Strato ${var.name}: internal load balancer for Kafka bootstrap and metrics"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-strato-nlb" })
}

resource "aws_security_group" "broker" {
  name        = "${var.name}-strato-broker"
  description = "Strato ${var.name}: brokers"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-strato-broker" })
}

resource "aws_security_group" "etcd" {
  name        = "${var.name}-strato-etcd"
  description = "Strato ${var.name}: etcd members"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-strato-etcd" })
}

# ---- load balancer and brokers ------------------------------------------------------------------

locals {
  # Who may reach which port, on the load balancer and (at the advertised address) on every
  # broker alike. Keys start with the listener's key (security.tf): "kafka" for port 9092.
  client_ingress = merge(
    merge([
      for key, listener in local.kafka_listeners : {
        for c in var.client_cidrs : "${key} ${c}" => { cidr = c, port = listener.port, description = "Kafka from clients" }
      }
    ]...),
    { for c in local.metrics_cidrs : "http ${c}" => { cidr = c, port = 9644, description = "Broker HTTP (metrics, health) from monitoring" } },
  )
  # The ports the load balancer forwards, as strings ("9092", "9644") for for_each.
  nlb_target_ports = toset([for p in values(local.nlb_ports) : tostring(p.port)])
}

resource "aws_vpc_security_group_ingress_rule" "nlb_clients" {
  for_each = local.client_ingress

  security_group_id = aws_security_group.nlb.id
  description       = each.value.description
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
}

resource "aws_vpc_security_group_ingress_rule" "broker_clients" {
  for_each = local.client_ingress

  security_group_id = aws_security_group.broker.id
  description       = each.value.description
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_broker" {
  for_each = local.nlb_target_ports

  security_group_id            = aws_security_group.nlb.id
  description                  = "To brokers (traffic and health checks)"
  referenced_security_group_id = aws_security_group.broker.id
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
}

resource "aws_vpc_security_group_ingress_rule" "broker_from_nlb" {
  for_each = local.nlb_target_ports

  security_group_id            = aws_security_group.broker.id
  description                  = "From the load balancer (traffic and health checks)"
  referenced_security_group_id = aws_security_group.nlb.id
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
}

resource "aws_vpc_security_group_egress_rule" "broker_https" {
  security_group_id = aws_security_group.broker.id
  description       = "HTTPS to S3, ECR, CloudWatch Logs, SSM and image registries"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "broker_to_etcd" {
  security_group_id            = aws_security_group.broker.id
  description                  = "etcd client port"
  referenced_security_group_id = aws_security_group.etcd.id
  ip_protocol                  = "tcp"
  from_port                    = 2379
  to_port                      = 2379
}

# ---- etcd ----------------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "etcd_client_brokers" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd client port from brokers"
  referenced_security_group_id = aws_security_group.broker.id
  ip_protocol                  = "tcp"
  from_port                    = 2379
  to_port                      = 2379
}

# for_each over the variable only: keys must be known when planning, new group ids are not.
resource "aws_vpc_security_group_ingress_rule" "etcd_client_admin" {
  for_each = toset(var.etcd_client_security_group_ids)

  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd client port from admin hosts"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 2379
  to_port                      = 2379
}

resource "aws_vpc_security_group_ingress_rule" "etcd_peer" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd peer port between members"
  referenced_security_group_id = aws_security_group.etcd.id
  ip_protocol                  = "tcp"
  from_port                    = 2380
  to_port                      = 2380
}

resource "aws_vpc_security_group_egress_rule" "etcd_peer" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd peer port between members"
  referenced_security_group_id = aws_security_group.etcd.id
  ip_protocol                  = "tcp"
  from_port                    = 2380
  to_port                      = 2380
}

resource "aws_vpc_security_group_egress_rule" "etcd_https" {
  security_group_id = aws_security_group.etcd.id
  description       = "HTTPS to S3 (snapshots), CloudWatch Logs, SSM and the etcd image registry"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}
