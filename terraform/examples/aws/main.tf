# A complete Strato cluster in a new VPC: three zones with a private and a public subnet each,
# NAT for image pulls and AWS APIs, an S3 gateway endpoint (so segment traffic stays off the
# NAT gateways and their per-GB charge), and the cluster itself (modules/strato).
# docs/DEPLOY.md walks through it.

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, { "strato:example" = "aws" })
  }
}

locals {
  zones        = var.availability_zones
  nat_gateways = var.nat_gateway_per_zone ? 3 : 1
}

resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:An example VPC; flow logs (and their per-GB cost on broker traffic) are a choice for the VPC you deploy into.
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = var.name }

  lifecycle {
    precondition {
      condition     = alltrue([for z in var.availability_zones : startswith(z, var.region)])
      error_message = "availability_zones must be zones of var.region."
    }
  }
}

# No rules: nothing may use the default security group.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
}

resource "aws_subnet" "private" {
  count = 3

  vpc_id            = aws_vpc.this.id
  availability_zone = local.zones[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, count.index)
  tags              = { Name = "${var.name}-private-${local.zones[count.index]}" }
}

resource "aws_subnet" "public" {
  count = 3

  vpc_id                  = aws_vpc.this.id
  availability_zone       = local.zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, 200 + count.index)
  map_public_ip_on_launch = false
  tags                    = { Name = "${var.name}-public-${local.zones[count.index]}" }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = var.name }
}

resource "aws_eip" "nat" {
  count = local.nat_gateways

  domain = "vpc"
  tags   = { Name = "${var.name}-nat-${local.zones[count.index]}" }
}

resource "aws_nat_gateway" "this" {
  count = local.nat_gateways

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = { Name = "${var.name}-${local.zones[count.index]}" }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name}-public" }

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }
}

resource "aws_route_table_association" "public" {
  count = 3

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "private" {
  count = 3

  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name}-private-${local.zones[count.index]}" }

  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.this[count.index % local.nat_gateways].id
  }
}

resource "aws_route_table_association" "private" {
  count = 3

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id
  tags              = { Name = "${var.name}-s3" }
}

module "strato" {
  source = "../../modules/strato"

  name                 = var.name
  vpc_id               = aws_vpc.this.id
  subnet_ids           = aws_subnet.private[*].id
  client_cidrs         = coalesce(var.client_cidrs, [var.vpc_cidr])
  strato_image         = var.strato_image
  broker_min           = var.broker_min
  broker_max           = var.broker_max
  broker_instance_type = var.broker_instance_type

  # Kafka security (docs/DEPLOY.md, "Securing a cluster"); the defaults are plaintext, open.
  listener_security_protocol = var.listener_security_protocol
  listener_port              = var.listener_port
  plaintext_listener_port    = var.plaintext_listener_port
  advertised_host            = var.advertised_host
  bootstrap_dns              = var.bootstrap_dns
  tls                        = var.tls
  sasl_mechanisms            = var.sasl_mechanisms
  authorizer_enabled         = var.authorizer_enabled
  super_users                = var.super_users
  admin_user                 = var.admin_user
  secrets_kms_key_arn        = var.secrets_kms_key_arn

  nlb_deletion_protection = var.nlb_deletion_protection
  force_destroy_bucket    = var.force_destroy_bucket
}
