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
  name                = "${var.name}-strato-broker"
  min_size            = var.broker_count
  desired_capacity    = var.broker_count
  max_size            = var.broker_count + 1
  vpc_zone_identifier = var.subnet_ids
  target_group_arns   = [for tg in aws_lb_target_group.broker : tg.arn]

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

  # Launch a replacement before terminating an instance (never below broker_count in service).
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

  enabled_metrics = ["GroupDesiredCapacity", "GroupInServiceInstances", "GroupTotalInstances"]

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
