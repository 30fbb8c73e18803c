output "bootstrap_servers" {
  description = "Kafka bootstrap.servers, reachable from inside the VPC."
  value       = module.strato.bootstrap_servers
}

output "security_protocol" {
  description = "The clients' security.protocol for bootstrap_servers."
  value       = module.strato.security_protocol
}

output "plaintext_bootstrap_servers" {
  description = "bootstrap.servers of the second, PLAINTEXT listener, or null."
  value       = module.strato.plaintext_bootstrap_servers
}

output "certificate_dns_names" {
  description = "DNS names a broker certificate needs (advertised_host private_dns)."
  value       = module.strato.certificate_dns_names
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
