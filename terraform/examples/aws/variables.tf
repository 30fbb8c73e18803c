variable "region" {
  description = "AWS region of the cluster."
  type        = string
  default     = "us-east-1"
}

variable "availability_zones" {
  description = "The three zones of var.region to use (one private and one public subnet each)."
  type        = list(string)
  default     = ["us-east-1a", "us-east-1b", "us-east-1c"]

  validation {
    condition     = length(var.availability_zones) == 3 && length(distinct(var.availability_zones)) == 3
    error_message = "availability_zones must list three different zones."
  }
}

variable "name" {
  description = "Cluster name (resource names, etcd prefix, object prefix)."
  type        = string
  default     = "strato"
}

variable "vpc_cidr" {
  description = "CIDR block of the new VPC; a /16 is split into three private /20s and three public /24s."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be a valid CIDR block of /18 or larger."
  }
}

variable "client_cidrs" {
  description = "CIDR blocks of Kafka clients; null for the whole VPC."
  type        = list(string)
  default     = null
}

variable "strato_image" {
  description = "Broker image with a tag, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/strato:0.1.0 (docs/DEPLOY.md, step 1)."
  type        = string
}

variable "broker_count" {
  description = "Number of brokers."
  type        = number
  default     = 3
}

variable "broker_instance_type" {
  description = "EC2 instance type of the brokers."
  type        = string
  default     = "m7i.xlarge"
}

variable "nat_gateway_per_zone" {
  description = "One NAT gateway per zone (survives a zone failure) instead of one for the VPC. S3 traffic never crosses them (gateway endpoint); they carry image pulls, logs and SSM."
  type        = bool
  default     = false
}

variable "nlb_deletion_protection" {
  description = "Deletion protection of the load balancer; set false (and apply) before `terraform destroy`."
  type        = bool
  default     = true
}

variable "force_destroy_bucket" {
  description = "Let `terraform destroy` delete the bucket with the whole log in it; set true (and apply) only to tear the cluster down."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource (provider default_tags)."
  type        = map(string)
  default     = {}
}
