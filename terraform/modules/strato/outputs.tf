output "bootstrap_servers" {
  description = "Kafka bootstrap.servers for clients (the internal load balancer, or bootstrap_dns's name), on listener_port. Clients then connect to each broker's advertised address, so they must be able to reach the VPC."
  value       = "${local.bootstrap_host}:${var.listener_port}"
}

output "security_protocol" {
  description = "The clients' security.protocol for bootstrap_servers (listener_security_protocol)."
  value       = var.listener_security_protocol
}

output "plaintext_bootstrap_servers" {
  description = "bootstrap.servers of the second, PLAINTEXT listener (plaintext_listener_port), or null."
  value       = var.plaintext_listener_port == null ? null : "${local.bootstrap_host}:${var.plaintext_listener_port}"
}

output "certificate_dns_names" {
  description = "The DNS names (subject alternative names) a broker certificate needs with advertised_host private_dns: the brokers' wildcard and the bootstrap address (the load balancer's wildcard, or bootstrap_dns's name)."
  value = [
    "*.${local.private_dns_domain}",
    var.bootstrap_dns == null ? "*.elb.${local.region}.${data.aws_partition.current.dns_suffix}" : local.bootstrap_host,
  ]
}

output "bucket_name" {
  description = "S3 bucket holding the log."
  value       = module.bucket.bucket_name
}

output "object_store_url" {
  description = "The brokers' --object-store (also what `strato cluster status` and `strato segment dump` take)."
  value       = module.bucket.object_store_url
}

output "metadata_url" {
  description = "The brokers' --metadata: the three etcd members and the cluster's key prefix."
  value       = local.metadata_url
}

output "etcd_private_ips" {
  description = "Private IPs of the etcd members etcd-0, etcd-1, etcd-2 (stable across instance replacement)."
  value       = local.etcd_ips
}

output "etcd_snapshots_url" {
  description = "Where the etcd members upload their hourly snapshots (one folder per member)."
  value       = "s3://${module.bucket.bucket_name}/${local.etcd_snapshot_prefix}/"
}

output "metrics_url" {
  description = "/metrics of whichever broker the load balancer picks (a quick look); scrape every broker with prometheus_scrape_config instead."
  value       = "http://${aws_lb.this.dns_name}:9644/metrics"
}

output "prometheus_scrape_config" {
  description = "A Prometheus scrape job that finds every broker through EC2 service discovery (Prometheus needs ec2:DescribeInstances and must be in metrics_cidrs)."
  value = yamlencode({
    job_name = "strato-${var.name}"
    ec2_sd_configs = [{
      region  = local.region
      port    = 9644
      filters = [{ name = "tag:aws:autoscaling:groupName", values = [aws_autoscaling_group.broker.name] }]
    }]
    relabel_configs = [
      { source_labels = ["__meta_ec2_availability_zone"], target_label = "rack" },
      { source_labels = ["__meta_ec2_instance_id"], target_label = "instance_id" },
    ]
  })
}

output "broker_autoscaling_group_name" {
  description = "Name of the brokers' Auto Scaling group (aws autoscaling start-instance-refresh ...)."
  value       = aws_autoscaling_group.broker.name
}

output "broker_security_group_id" {
  description = "Security group of the brokers."
  value       = aws_security_group.broker.id
}

output "etcd_security_group_id" {
  description = "Security group of the etcd members."
  value       = aws_security_group.etcd.id
}

output "broker_role_arn" {
  description = "IAM role of the brokers."
  value       = aws_iam_role.instance["broker"].arn
}

output "log_group_name" {
  description = "CloudWatch log group of the broker and etcd containers (one stream per broker instance and per etcd member)."
  value       = aws_cloudwatch_log_group.this.name
}
