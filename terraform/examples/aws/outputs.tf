output "bootstrap_servers" {
  description = "Kafka bootstrap.servers, reachable from inside the VPC."
  value       = module.strato.bootstrap_servers
}

output "bucket_name" {
  description = "S3 bucket holding the log."
  value       = module.strato.bucket_name
}

output "object_store_url" {
  description = "The brokers' --object-store."
  value       = module.strato.object_store_url
}

output "metadata_url" {
  description = "The brokers' --metadata."
  value       = module.strato.metadata_url
}

output "metrics_url" {
  description = "/metrics of one broker, through the load balancer."
  value       = module.strato.metrics_url
}

output "prometheus_scrape_config" {
  description = "Prometheus scrape job for every broker (EC2 service discovery)."
  value       = module.strato.prometheus_scrape_config
}

output "log_group_name" {
  description = "CloudWatch log group of brokers and etcd."
  value       = module.strato.log_group_name
}

output "vpc_id" {
  description = "The new VPC, to peer with or to place clients in."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets (one per zone) where clients can run."
  value       = aws_subnet.private[*].id
}
