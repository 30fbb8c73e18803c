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

variable "broker_min" {
  description = "Fewest brokers."
  type        = number
  default     = 3
}

variable "broker_max" {
  description = "Most brokers: above broker_min, the group scales on CPU and produced bytes per broker (docs/DEPLOY.md, \"Elasticity\")."
  type        = number
  default     = 6
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

# ---- Kafka security: passed to modules/strato, whose variables.tf describes each in full -----------

variable "listener_security_protocol" {
  description = "Security protocol of the Kafka listener: PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL (SSL and SASL_SSL need tls)."
  type        = string
  default     = "PLAINTEXT"
}

variable "listener_port" {
  description = "Port of the Kafka listener."
  type        = number
  default     = 9092
}

variable "plaintext_listener_port" {
  description = "A second, PLAINTEXT listener on this port while clients move to the secured one; null for none."
  type        = number
  default     = null
}

variable "advertised_host" {
  description = "What brokers advertise: private_ip or private_dns (ip-10-42-0-5.ec2.internal, which a wildcard certificate covers); null for private_dns with TLS, private_ip otherwise."
  type        = string
  default     = null
}

variable "bootstrap_dns" {
  description = "{ zone_id, name }: an alias record for the load balancer in a Route 53 private hosted zone; null for none."
  type = object({
    zone_id = string
    name    = string
  })
  default = null
}

variable "tls" {
  description = "References (Secrets Manager ARNs or SSM SecureString parameter names), never values, of the broker certificate chain, its private key and optionally the CA of client certificates (SSL only)."
  type = object({
    certificate_chain_secret = string
    private_key_secret       = string
    client_ca_secret         = optional(string)
  })
  default = null
}

variable "sasl_mechanisms" {
  description = "SASL mechanisms (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN); null for the module's choice by protocol."
  type        = list(string)
  default     = null
}

variable "authorizer_enabled" {
  description = "Check requests against ACLs."
  type        = bool
  default     = false
}

variable "super_users" {
  description = "Principals the authorizer allows everything, e.g. [\"User:ops\"]."
  type        = list(string)
  default     = []
}

variable "admin_user" {
  description = "{ name, password_secret }: the first user, made at every broker boot; password_secret is a reference (Secrets Manager ARN or SSM SecureString parameter name), never the password."
  type = object({
    name            = string
    password_secret = string
  })
  default = null
}

variable "secrets_kms_key_arn" {
  description = "Customer-managed KMS key of those secrets; null for the AWS-managed keys."
  type        = string
  default     = null
}
