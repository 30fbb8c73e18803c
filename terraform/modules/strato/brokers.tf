# Brokers: identical, stateless instances in an Auto Scaling group over all subnets. A change of
# image, flags, AMI or instance type makes a new launch template version, and the group rolls
# it out by instance refresh: a new broker starts before an old one is stopped (SIGTERM: flush,
# hand over partitions, leave), one at a time. docs/DEPLOY.md, "Upgrades".

resource "aws_launch_template" "broker" {
  name_prefix            = "${var.name}-strato-broker-"
  description            = "Strato ${var.name} brokers"
  image_id               = local.ami_id
  instance_type          = var.broker_instance_type
  ebs_optimized          = true
  update_default_version = true
  vpc_security_group_ids = [aws_security_group.broker.id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance["broker"].arn
  }

  # IMDSv2 only, one hop: the broker container shares the host's network (docker --network
  # host), so it reaches the metadata service for its credentials and nothing further can.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_type           = "gp3"
      volume_size           = var.broker_root_volume_size_gib
      encrypted             = true
      kms_key_id            = var.kms_key_arn
      delete_on_termination = true
    }
  }

  user_data = base64encode(templatefile("${path.module}/templates/broker-user-data.sh.tftpl", {
    cluster            = var.name
    image              = var.strato_image
    ecr_registry       = local.ecr_registry
    ecr_region         = local.ecr_region
    region             = local.region
    log_group          = aws_cloudwatch_log_group.this.name
    metadata_url       = local.metadata_url
    object_store_url   = module.bucket.object_store_url
    cache_memory_bytes = var.broker_cache_memory_bytes
    cache_disk_bytes   = var.broker_cache_disk_bytes
    extra_args         = join("", [for a in var.broker_extra_args : " ${a}"])
    # Kafka security (security.tf): secrets by reference only.
    single_plaintext_listener = local.single_plaintext_listener
    listener_port             = var.listener_port
    listeners                 = local.listeners
    advertised_listeners      = local.advertised_listeners
    advertised_host           = local.advertised_host_expression
    private_dns_domain        = local.advertised_host == "private_dns" ? local.private_dns_domain : ""
    security_flags            = local.security_flags
    tls_dir                   = local.tls_dir
    tls_files                 = local.tls_files
    admin_user                = var.admin_user == null ? "" : var.admin_user.name
    admin_password            = local.admin_password
    # Elasticity: the drain hook and the produce-rate metric.
    group_name          = local.broker_group_name
    drain_hook          = local.broker_drain_hook
    metric_namespace    = local.metric_namespace
    produce_metric_name = local.produce_metric_name
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-strato-broker", "strato:role" = "broker" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${var.name}-strato-broker" })
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "broker" {
  name     = local.broker_group_name
  min_size = var.broker_min
  # Scaling policies own the desired capacity when there is room to scale; a fixed-size
  # group keeps one instance of room above it, for a replacement that starts before an old
  # broker stops.
  desired_capacity    = local.broker_autoscaling ? null : var.broker_min
  max_size            = local.broker_autoscaling ? var.broker_max : var.broker_min + 1
  vpc_zone_identifier = var.subnet_ids
  target_group_arns   = [for tg in aws_lb_target_group.broker : tg.arn]

  # A terminating instance (scale-in, instance refresh, a failed health check) waits in
  # Terminating:Wait until its broker drained: strato-lifecycle.service on the instance sees
  # the state in the instance metadata, stops the broker (SIGTERM: it hands its partitions and
  # groups over, then flushes) and completes the action. CONTINUE after the timeout anyway:
  # nothing acknowledged depends on the drain, only how long partitions are unavailable.
  initial_lifecycle_hook {
    name                 = local.broker_drain_hook
    lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
    heartbeat_timeout    = var.broker_drain_timeout_seconds
    default_result       = "CONTINUE"
  }

  # EC2 status checks, not the load balancer's: /ready fails on every broker while etcd is
  # unavailable, and replacing all brokers then would only make things worse. systemd restarts
  # a broker process that exits.
  health_check_type         = "EC2"
  health_check_grace_period = 120
  default_instance_warmup   = 120
  wait_for_capacity_timeout = "15m"

  launch_template {
    id      = aws_launch_template.broker.id
    version = aws_launch_template.broker.latest_version
  }

  # Launch a replacement before terminating an instance (never below the desired capacity in
  # service).
  instance_maintenance_policy {
    min_healthy_percentage = 100
    max_healthy_percentage = 110
  }

  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 100
      max_healthy_percentage = 110
      instance_warmup        = 120
    }
  }

  enabled_metrics = ["GroupDesiredCapacity", "GroupInServiceInstances", "GroupTotalInstances", "GroupTerminatingInstances", "GroupPendingInstances"]

  dynamic "tag" {
    for_each = merge(local.tags, { Name = "${var.name}-strato-broker" })

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false
    }
  }

  depends_on = [terraform_data.preconditions, aws_volume_attachment.etcd]
}

# Elasticity (broker_max above broker_min): two target-tracking policies, and the group
# takes the larger capacity either asks for. docs/DEPLOY.md, "Elasticity".
resource "aws_autoscaling_policy" "broker_cpu" {
  count = local.broker_autoscaling ? 1 : 0

  name                      = "${var.name}-strato-broker-cpu"
  autoscaling_group_name    = aws_autoscaling_group.broker.name
  policy_type               = "TargetTrackingScaling"
  estimated_instance_warmup = 120

  target_tracking_configuration {
    target_value = var.broker_cpu_target_percent

    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }
  }
}

# Produced bytes per second per broker: every broker puts its own rate (the increase of
# strato_produce_bytes_total over the last minute) under the group's name, so the average of
# the group's data points is the rate per broker (strato-metrics-publish.timer).
resource "aws_autoscaling_policy" "broker_produce_bytes" {
  count = local.broker_autoscaling && var.broker_produce_target_bytes_per_second != null ? 1 : 0

  name                      = "${var.name}-strato-broker-produce-bytes"
  autoscaling_group_name    = aws_autoscaling_group.broker.name
  policy_type               = "TargetTrackingScaling"
  estimated_instance_warmup = 120

  target_tracking_configuration {
    target_value = var.broker_produce_target_bytes_per_second

    customized_metric_specification {
      metric_name = local.produce_metric_name
      namespace   = local.metric_namespace
      statistic   = "Average"
      unit        = "Bytes/Second"

      metric_dimension {
        name  = "AutoScalingGroupName"
        value = aws_autoscaling_group.broker.name
      }
    }
  }
}
