# A Strato cluster on AWS: the bucket (modules/strato-bucket), three etcd members with their
# own data volumes (etcd.tf), brokers in an Auto Scaling group behind an internal network load
# balancer (brokers.tf, nlb.tf), their IAM roles (iam.tf) and security groups (network.tf), and
# the Kafka listeners, TLS and SASL settings (security.tf).
# docs/DEPLOY.md explains the design and how to run it.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_subnet" "selected" {
  count = length(var.subnet_ids)

  id = var.subnet_ids[count.index]
}

data "aws_vpc" "selected" {
  id = var.vpc_id
}

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.architecture}"
}

data "aws_ec2_instance_type" "broker" {
  instance_type = var.broker_instance_type
}

data "aws_ec2_instance_type" "etcd" {
  instance_type = var.etcd_instance_type
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  bucket_name          = coalesce(var.bucket_name, "${var.name}-strato-${local.account_id}-${local.region}")
  object_prefix        = coalesce(var.object_prefix, var.name)
  etcd_snapshot_prefix = "${local.object_prefix}-etcd-snapshots"
  metrics_cidrs        = coalesce(var.metrics_cidrs, var.client_cidrs)
  ami_id               = coalesce(var.ami_id, data.aws_ssm_parameter.al2023.insecure_value)

  # The etcd members: fixed names, one per zone of the first three subnets, and the private IP
  # of a network interface that outlives the instance, so member URLs never change.
  etcd_members = [for i in range(3) : "etcd-${i}"]
  etcd_ips     = aws_network_interface.etcd[*].private_ip
  etcd_prefix  = "/strato/${var.name}"
  metadata_url = "etcd://${join(",", [for ip in local.etcd_ips : "${ip}:2379"])}${local.etcd_prefix}"

  # An image in ECR (<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest]) needs a
  # registry login and pull rights on that repository; any other image is pulled anonymously.
  ecr_image      = try(regex("^(([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com)/([^:@]+)", var.strato_image), null)
  ecr_registry   = local.ecr_image == null ? "" : local.ecr_image[0]
  ecr_region     = local.ecr_image == null ? "" : local.ecr_image[2]
  ecr_repository = local.ecr_image == null ? null : "arn:${local.partition}:ecr:${local.ecr_image[2]}:${local.ecr_image[1]}:repository/${local.ecr_image[3]}"

  tags = merge(var.tags, { "strato:cluster" = var.name })

  # Elasticity (brokers.tf): the group's name is fixed, so the brokers' user data and IAM
  # policy can name it without depending on the group.
  broker_group_name   = "${var.name}-strato-broker"
  broker_autoscaling  = var.broker_max > var.broker_min
  broker_drain_hook   = "drain"
  metric_namespace    = "Strato"
  produce_metric_name = "ProduceBytesPerSecond"
}

module "bucket" {
  source = "../strato-bucket"

  bucket_name                        = local.bucket_name
  object_prefix                      = local.object_prefix
  versioning_enabled                 = var.bucket_versioning_enabled
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  etcd_snapshot_prefix               = local.etcd_snapshot_prefix
  etcd_snapshot_retention_days       = var.etcd_snapshot_retention_days
  kms_key_arn                        = var.kms_key_arn
  force_destroy                      = var.force_destroy_bucket
  tags                               = local.tags
}

# Broker and etcd containers log here through Docker's awslogs driver, one stream per instance.
resource "aws_cloudwatch_log_group" "this" {
  name              = "/strato/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

# Checks that no variable validation can do, because they need what AWS says about the inputs.
resource "terraform_data" "preconditions" {
  lifecycle {
    precondition {
      condition     = length(distinct(data.aws_subnet.selected[*].availability_zone)) == length(var.subnet_ids)
      error_message = "subnet_ids must be in different availability zones (one subnet per zone)."
    }
    precondition {
      condition     = alltrue([for s in data.aws_subnet.selected : s.vpc_id == var.vpc_id])
      error_message = "Every subnet in subnet_ids must belong to vpc_id."
    }
    precondition {
      condition     = contains(data.aws_ec2_instance_type.broker.supported_architectures, var.architecture) && contains(data.aws_ec2_instance_type.etcd.supported_architectures, var.architecture)
      error_message = "broker_instance_type and etcd_instance_type must support var.architecture (e.g. m7i for x86_64, m7g for arm64)."
    }
    precondition {
      condition     = var.broker_max >= var.broker_min
      error_message = "broker_max must be at least broker_min."
    }
    precondition {
      condition     = var.broker_cache_disk_bytes <= (var.broker_root_volume_size_gib - 12) * 1073741824
      error_message = "broker_cache_disk_bytes must leave at least 12 GiB of broker_root_volume_size_gib for the OS and images."
    }
    precondition {
      condition     = var.broker_cache_memory_bytes <= data.aws_ec2_instance_type.broker.memory_size * 1048576 * 0.6
      error_message = "broker_cache_memory_bytes must be at most 60% of the broker instance type's memory (the rest is for unflushed and queued request bytes and the OS)."
    }
    # Kafka security (security.tf): settings that would have no effect are refused, so that
    # nobody believes a cluster is protected by them.
    precondition {
      condition     = local.tls_enabled == (var.tls != null)
      error_message = "tls is needed by, and only by, listener_security_protocol SSL and SASL_SSL."
    }
    precondition {
      condition     = try(var.tls.client_ca_secret, null) == null || var.listener_security_protocol == "SSL"
      error_message = "tls.client_ca_secret (client certificates) applies to listener_security_protocol SSL only."
    }
    precondition {
      condition     = var.sasl_mechanisms == null || local.sasl_enabled
      error_message = "sasl_mechanisms applies to listener_security_protocol SASL_PLAINTEXT and SASL_SSL only."
    }
    precondition {
      condition     = length(var.super_users) == 0 || var.authorizer_enabled
      error_message = "super_users only matter with authorizer_enabled = true."
    }
    precondition {
      condition     = var.plaintext_listener_port == null || (var.listener_security_protocol != "PLAINTEXT" && var.plaintext_listener_port != var.listener_port)
      error_message = "plaintext_listener_port is a second listener next to a secured one: listener_security_protocol must not be PLAINTEXT, and the two ports must differ."
    }
    precondition {
      condition     = local.advertised_host != "private_dns" || data.aws_vpc.selected.enable_dns_support
      error_message = "advertised_host private_dns needs DNS resolution in the VPC (enable_dns_support) to resolve the brokers' names."
    }
  }
}
