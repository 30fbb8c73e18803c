variable "name" {
  description = "Cluster name: the object prefix in the bucket and the etcd key prefix (/strato/<name>)."
  type        = string
  default     = "dev"
}

variable "bucket_name" {
  description = "Bucket to create in LocalStack (localstack/docker-compose.yml makes one named strato; this is another)."
  type        = string
  default     = "strato-tf"
}

variable "localstack_endpoint" {
  description = "LocalStack's address as the broker sees it, for --s3-endpoint."
  type        = string
  default     = "http://127.0.0.1:4566"

  validation {
    condition     = can(regex("^https?://[^/]+$", var.localstack_endpoint))
    error_message = "localstack_endpoint must be http(s)://host:port with no path."
  }
}

variable "etcd_endpoints" {
  description = "etcd client endpoints (host:port) the broker uses."
  type        = list(string)
  default     = ["127.0.0.1:2379"]
}
