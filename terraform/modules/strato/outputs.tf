output "bootstrap_servers" {
  description = "Kafka bootstrap.servers for clients (the internal load balancer). Clients then connect to each broker's private IP, so they must be able to reach the VPC."
  value       = "${aws_lb.this.dns_name}:9092"
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
