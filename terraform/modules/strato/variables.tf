# ---- cluster and network ------------------------------------------------------------------------

variable "name" {
  description = "Cluster name: prefixes resource names, is the etcd key prefix (/strato/<name>) and the default object prefix in the bucket."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name))
    error_message = "name must be 2-20 characters of lowercase letters, digits and '-', starting with a letter (it goes into load balancer names, which are limited to 32 characters)."
  }
}

variable "vpc_id" {
  description = "VPC the cluster runs in. Kafka clients must reach the brokers' private IPs in it (same VPC, peering, Transit Gateway or VPN): see docs/DEPLOY.md."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "subnet_ids" {
  description = "Private subnets, one per availability zone (at least 3 zones): brokers spread over all of them, the three etcd members go into the first three, and the internal load balancer has a node in each."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 3 && length(distinct(var.subnet_ids)) == length(var.subnet_ids) && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must list at least 3 distinct subnet ids (subnet-...), in different availability zones, so that etcd keeps a quorum when one zone fails."
  }
}

variable "client_cidrs" {
  description = "CIDR blocks of the Kafka clients: they may reach port 9092 of the load balancer and of every broker. World-open blocks are refused."
  type        = list(string)

  validation {
    condition     = length(var.client_cidrs) > 0 && alltrue([for c in var.client_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0" && c != "::/0"])
    error_message = "client_cidrs must list at least one valid CIDR block, and neither 0.0.0.0/0 nor ::/0."
  }
}

variable "metrics_cidrs" {
  description = "CIDR blocks that may reach the brokers' HTTP port 9644 (/metrics, /health, /ready), e.g. Prometheus; null means client_cidrs."
  type        = list(string)
  default     = null

  validation {
    condition     = var.metrics_cidrs == null || alltrue([for c in coalesce(var.metrics_cidrs, []) : can(cidrhost(c, 0)) && c != "0.0.0.0/0" && c != "::/0"])
    error_message = "metrics_cidrs must be null or valid CIDR blocks, and neither 0.0.0.0/0 nor ::/0."
  }
}

variable "architecture" {
  description = "CPU architecture of all instances and of the images they run: x86_64 or arm64 (Graviton). The instance types must match it."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "ami_id" {
  description = "AMI of all instances (an Amazon Linux 2023 image or one with docker, systemd, the AWS CLI and curl); null for the latest Amazon Linux 2023 for the architecture, which rolls the brokers when AWS publishes a new one."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "ami_id must be null or an AMI id (ami-...)."
  }
}

# ---- brokers -------------------------------------------------------------------------------------

variable "strato_image" {
  description = "Container image of the broker, with a tag or digest (built from the repository's Dockerfile), e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/strato:0.1.0. Instances may pull an ECR image of this account and region (only that repository)."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+[:@][A-Za-z0-9_.:-]+$", var.strato_image)) && !endswith(var.strato_image, ":latest")
    error_message = "strato_image must name a tag or a digest other than :latest, so that every broker of the group runs the same build."
  }
}

variable "broker_min" {
  description = "Fewest brokers: the Auto Scaling group's minimum (and its size when broker_max equals it). See docs/DEPLOY.md, \"Sizing\" and \"Elasticity\"."
  type        = number
  default     = 3

  validation {
    condition     = var.broker_min >= 1 && var.broker_min <= 100 && floor(var.broker_min) == var.broker_min
    error_message = "broker_min must be a whole number from 1 to 100."
  }
}

variable "broker_max" {
  description = "Most brokers. Above broker_min, target-tracking policies scale the group between the two on CPU and on produced bytes per broker (broker_cpu_target_percent, broker_produce_target_bytes_per_second). docs/DEPLOY.md, \"Elasticity\"."
  type        = number
  default     = 3

  validation {
    condition     = var.broker_max >= 1 && var.broker_max <= 100 && floor(var.broker_max) == var.broker_max
    error_message = "broker_max must be a whole number from 1 to 100."
  }
}

variable "broker_cpu_target_percent" {
  description = "Average CPU utilization of the brokers the scaling policy keeps (with broker_max above broker_min)."
  type        = number
  default     = 60

  validation {
    condition     = var.broker_cpu_target_percent >= 10 && var.broker_cpu_target_percent <= 90
    error_message = "broker_cpu_target_percent must be from 10 to 90."
  }
}

variable "broker_produce_target_bytes_per_second" {
  description = "Produced bytes per second per broker the second scaling policy keeps, from the Strato/ProduceBytesPerSecond metric each broker publishes every minute (with broker_max above broker_min). Null: scale on CPU only."
  type        = number
  default     = 52428800

  validation {
    condition     = var.broker_produce_target_bytes_per_second == null ? true : var.broker_produce_target_bytes_per_second >= 1048576
    error_message = "broker_produce_target_bytes_per_second must be at least 1 MiB/s (or null)."
  }
}

variable "broker_drain_timeout_seconds" {
  description = "How long a terminating broker may take to drain (hand its partitions and groups over, flush) before the instance goes: the termination lifecycle hook's heartbeat timeout."
  type        = number
  default     = 300

  validation {
    condition     = var.broker_drain_timeout_seconds >= 60 && var.broker_drain_timeout_seconds <= 7200
    error_message = "broker_drain_timeout_seconds must be from 60 to 7200."
  }
}

variable "broker_instance_type" {
  description = "EC2 instance type of the brokers. Network bandwidth is usually the limit: every produced byte comes in once and goes out to S3 once, plus once per consumer."
  type        = string
  default     = "m7i.xlarge"
}

variable "broker_root_volume_size_gib" {
  description = "Size (GiB) of a broker's encrypted gp3 root volume, which also holds the disk tier of the chunk cache."
  type        = number
  default     = 64

  validation {
    condition     = var.broker_root_volume_size_gib >= 16 && floor(var.broker_root_volume_size_gib) == var.broker_root_volume_size_gib
    error_message = "broker_root_volume_size_gib must be a whole number of at least 16."
  }
}

variable "broker_cache_memory_bytes" {
  description = "--cache-memory-bytes: memory for decompressed chunks served to consumers (tail reads). Leave room for --max-unflushed-bytes, --max-queued-request-bytes and the OS."
  type        = number
  default     = 4294967296

  validation {
    condition     = var.broker_cache_memory_bytes >= 0 && floor(var.broker_cache_memory_bytes) == var.broker_cache_memory_bytes
    error_message = "broker_cache_memory_bytes must be a whole number of bytes, 0 or more."
  }
}

variable "broker_cache_disk_bytes" {
  description = "--cache-disk-bytes: local disk for chunks evicted from memory (0: memory only, else at least 64 MiB); must fit on the root volume with room to spare."
  type        = number
  default     = 34359738368

  validation {
    condition     = var.broker_cache_disk_bytes == 0 || (var.broker_cache_disk_bytes >= 67108864 && floor(var.broker_cache_disk_bytes) == var.broker_cache_disk_bytes)
    error_message = "broker_cache_disk_bytes must be 0 or a whole number of bytes of at least 64 MiB (67108864)."
  }
}

variable "broker_extra_args" {
  description = "More `strato serve` flags, one per element, as --flag=value (e.g. \"--default-partitions=6\"); see `strato serve --help`."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.broker_extra_args : can(regex("^--[a-z][a-z0-9-]*(=[A-Za-z0-9_.,:/@+-]*)?$", a))])
    error_message = "Each broker_extra_args element must look like --flag or --flag=value, with no spaces, quotes or shell characters in the value."
  }
}

# ---- Kafka security (docs/DEPLOY.md, "Securing a cluster") ------------------------------------

variable "listener_security_protocol" {
  description = "Security protocol of the brokers' Kafka listener, in Kafka's names: PLAINTEXT (no TLS, no authentication: every client is User:ANONYMOUS), SASL_PLAINTEXT (SCRAM or PLAIN logins without TLS), SSL (TLS; with tls.client_ca_secret, clients also log in with a certificate) or SASL_SSL (TLS and SCRAM or PLAIN logins). SSL and SASL_SSL need tls."
  type        = string
  default     = "PLAINTEXT"

  validation {
    condition     = contains(["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"], var.listener_security_protocol)
    error_message = "listener_security_protocol must be PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL."
  }
}

variable "listener_port" {
  description = "Port of the Kafka listener, on every broker and on the load balancer (clients may reach it from client_cidrs)."
  type        = number
  default     = 9092

  validation {
    condition     = var.listener_port >= 1024 && var.listener_port <= 65535 && floor(var.listener_port) == var.listener_port && var.listener_port != 9644
    error_message = "listener_port must be a whole number from 1024 to 65535, other than the HTTP port 9644."
  }
}

variable "plaintext_listener_port" {
  description = "A second Kafka listener, PLAINTEXT, on this port (on every broker and on the load balancer), for moving the clients of a running cluster to listener_security_protocol one at a time; null for none. Remove it once every client has moved (docs/DEPLOY.md, \"Securing a running cluster\")."
  type        = number
  default     = null

  validation {
    condition     = var.plaintext_listener_port == null || try(var.plaintext_listener_port >= 1024 && var.plaintext_listener_port <= 65535 && floor(var.plaintext_listener_port) == var.plaintext_listener_port && var.plaintext_listener_port != 9644, false)
    error_message = "plaintext_listener_port must be null or a whole number from 1024 to 65535, other than the HTTP port 9644."
  }
}

variable "advertised_host" {
  description = "The host each broker gives clients in Metadata responses: private_ip (e.g. 10.0.1.5) or private_dns, the EC2 private DNS name of that IP (ip-10-0-1-5.ec2.internal in us-east-1, ip-10-0-1-5.<region>.compute.internal elsewhere), which resolves in the VPC whatever the subnets' hostname type. One wildcard certificate (*.ec2.internal or *.<region>.compute.internal) then covers every broker, including the ones the Auto Scaling group adds later. null: private_dns for SSL and SASL_SSL (clients check the broker's name against its certificate), private_ip otherwise."
  type        = string
  default     = null

  validation {
    condition     = var.advertised_host == null || contains(["private_ip", "private_dns"], coalesce(var.advertised_host, "private_ip"))
    error_message = "advertised_host must be null, private_ip or private_dns."
  }
}

variable "bootstrap_dns" {
  description = "An alias record for the load balancer, e.g. { zone_id = \"Z0123...\", name = \"kafka.prod.internal\" } in a Route 53 private hosted zone that the clients' VPCs resolve. bootstrap_servers then gives this name, and a TLS certificate needs it among its names instead of *.elb.<region>.amazonaws.com. null: clients bootstrap from the load balancer's own DNS name."
  type = object({
    zone_id = string
    name    = string
  })
  default = null

  validation {
    condition     = var.bootstrap_dns == null || try(can(regex("^Z[A-Z0-9]{1,31}$", var.bootstrap_dns.zone_id)) && can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z][a-z0-9-]*[a-z0-9]\\.?$", var.bootstrap_dns.name)), false)
    error_message = "bootstrap_dns must be null or { zone_id = a Route 53 hosted zone id (Z...), name = a lowercase DNS name in that zone }."
  }
}

variable "tls" {
  description = "TLS material of SSL and SASL_SSL listeners, given as references to where it is stored, never as the PEM text itself (which would be written to the Terraform state). Each field is the full ARN of a Secrets Manager secret whose SecretString is the PEM text, or the name (/path/name) or ARN of an SSM Parameter Store SecureString parameter (an advanced parameter if the PEM is over 4 KB): certificate_chain_secret holds the broker certificate followed by any intermediate CA certificates, private_key_secret its unencrypted private key, and client_ca_secret (optional, SSL only) the CA certificates that client certificates must chain to: then every client needs one, and its principal is User:<subject CN>. A broker reads them before it starts and every 15 minutes, and replaces a file under /etc/strato/tls only when its content changed and the new certificate matches the new key; the broker then reloads it, so a rotated certificate reaches running brokers without a restart. null: no TLS."
  type = object({
    certificate_chain_secret = string
    private_key_secret       = string
    client_ca_secret         = optional(string)
  })
  default = null

  validation {
    condition = var.tls == null || try(alltrue([
      for ref in concat([var.tls.certificate_chain_secret, var.tls.private_key_secret], var.tls.client_ca_secret == null ? [] : [var.tls.client_ca_secret]) :
      can(regex("^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}|arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/[A-Za-z0-9/_.-]+|(/[A-Za-z0-9_.-]+)+)$", ref))
    ]), false)
    error_message = "Each field of tls must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>, as describe-secret shows it), an SSM parameter ARN or an SSM parameter name starting with /; never the PEM text itself."
  }
}

variable "sasl_mechanisms" {
  description = "--sasl-mechanisms: the SASL mechanisms of SASL_PLAINTEXT and SASL_SSL listeners, from SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN. PLAIN sends the password itself, so it is safe over TLS only. null: all three with SASL_SSL, the two SCRAM mechanisms with SASL_PLAINTEXT."
  type        = list(string)
  default     = null

  validation {
    condition     = var.sasl_mechanisms == null || try(length(var.sasl_mechanisms) > 0 && length(distinct(var.sasl_mechanisms)) == length(var.sasl_mechanisms) && alltrue([for m in var.sasl_mechanisms : contains(["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"], m)]), false)
    error_message = "sasl_mechanisms must be null or a non-empty list of distinct mechanisms from SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN."
  }
}

variable "authorizer_enabled" {
  description = "--authorizer: check every request against the ACLs (managed with kafka-acls.sh, Kafka's AdminClient or `strato acl`); a principal with no ACL that allows an operation is refused, super users excepted. false: every client may do everything."
  type        = bool
  default     = false
}

variable "super_users" {
  description = "--super-users: principals that the authorizer allows everything, e.g. [\"User:ops\"] (admin_user's name is added to them). With SSL client certificates a principal is User:<subject CN>."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.super_users : can(regex("^User:[A-Za-z0-9._@=+-]{1,128}$", p))])
    error_message = "Each super_users element must be User:<name>, the name made of letters, digits and . _ @ = + - (no spaces or ;)."
  }
}

variable "admin_user" {
  description = "The first user, so that there is someone to create the others and the ACLs. Every broker runs `strato user create <name> --password-stdin` at boot (SCRAM-SHA-256 and SCRAM-SHA-512 credentials in etcd; an existing user gets its password reset to the stored one), and the user is a super user. name: the user name. password_secret: where the password is stored as plain text, given as the full ARN of a Secrets Manager secret or the name (/path/name) or ARN of an SSM Parameter Store SecureString parameter; never the password itself (it would be written to the Terraform state). null: no such user."
  type = object({
    name            = string
    password_secret = string
  })
  default = null

  validation {
    condition     = var.admin_user == null || try(can(regex("^[A-Za-z0-9._@-]{1,64}$", var.admin_user.name)) && can(regex("^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}|arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/[A-Za-z0-9/_.-]+|(/[A-Za-z0-9_.-]+)+)$", var.admin_user.password_secret)), false)
    error_message = "admin_user.name must be 1-64 letters, digits and . _ @ -; admin_user.password_secret must be a Secrets Manager secret ARN (with its 6-character suffix), an SSM parameter ARN or an SSM parameter name starting with /, never the password itself."
  }
}

variable "secrets_kms_key_arn" {
  description = "ARN of the customer-managed KMS key that encrypts the secrets or parameters of tls and admin_user: the broker role may then decrypt with it, through Secrets Manager and SSM only. null when they use the AWS-managed keys (aws/secretsmanager, aws/ssm), which need no grant."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", coalesce(var.secrets_kms_key_arn, "-")))
    error_message = "secrets_kms_key_arn must be null or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>; IAM does not accept an alias here)."
  }
}

# ---- etcd ----------------------------------------------------------------------------------------

variable "etcd_image" {
  description = "Container image of the etcd members."
  type        = string
  default     = "quay.io/coreos/etcd:v3.5.21"
}

variable "etcd_instance_type" {
  description = "EC2 instance type of the three etcd members."
  type        = string
  default     = "m7i.large"
}

variable "etcd_volume_size_gib" {
  description = "Size (GiB) of each etcd member's gp3 data volume (kept when its instance is replaced)."
  type        = number
  default     = 50

  validation {
    condition     = var.etcd_volume_size_gib >= 10 && floor(var.etcd_volume_size_gib) == var.etcd_volume_size_gib
    error_message = "etcd_volume_size_gib must be a whole number of at least 10."
  }
}

variable "etcd_quota_backend_bytes" {
  description = "etcd --quota-backend-bytes: database size at which etcd refuses writes (its default is 2 GiB; at most 8 GiB is recommended by etcd)."
  type        = number
  default     = 8589934592

  validation {
    condition     = var.etcd_quota_backend_bytes >= 1073741824 && var.etcd_quota_backend_bytes <= 8589934592
    error_message = "etcd_quota_backend_bytes must be from 1 GiB to 8 GiB."
  }
}

variable "etcd_auto_compaction_retention" {
  description = "etcd --auto-compaction-retention with --auto-compaction-mode=periodic: how much history etcd keeps. Every partition commit is a new revision, so without compaction the database grows until it hits its quota."
  type        = string
  default     = "1h"

  validation {
    condition     = can(regex("^[0-9]+[smh]$", var.etcd_auto_compaction_retention))
    error_message = "etcd_auto_compaction_retention must be a duration such as 30m or 1h."
  }
}

variable "etcd_snapshot_retention_days" {
  description = "Days the hourly etcd snapshots (s3://<bucket>/<object_prefix>-etcd-snapshots/) are kept."
  type        = number
  default     = 7

  validation {
    condition     = var.etcd_snapshot_retention_days >= 1 && floor(var.etcd_snapshot_retention_days) == var.etcd_snapshot_retention_days
    error_message = "etcd_snapshot_retention_days must be a whole number of at least 1."
  }
}

variable "etcd_client_security_group_ids" {
  description = "Security groups, besides the brokers', whose members may reach etcd's client port 2379 (e.g. an admin host running `strato cluster status`)."
  type        = list(string)
  default     = []
}

# ---- storage -------------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the S3 bucket to create; null for <name>-strato-<account id>-<region>."
  type        = string
  default     = null
}

variable "object_prefix" {
  description = "Key prefix of the cluster's objects in the bucket; null for the cluster name."
  type        = string
  default     = null
}

variable "bucket_versioning_enabled" {
  description = "Keep objects deleted by garbage collection or retention as noncurrent versions for noncurrent_version_expiration_days (see modules/strato-bucket)."
  type        = bool
  default     = true
}

variable "noncurrent_version_expiration_days" {
  description = "Days a deleted object stays recoverable as a noncurrent version when versioning is on."
  type        = number
  default     = 1
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the bucket (SSE-KMS with bucket keys), the EBS volumes and the log group; null for AWS-managed encryption (SSE-S3, the EBS default key, CloudWatch's default). Its key policy must allow EC2 Auto Scaling and CloudWatch Logs to use it."
  type        = string
  default     = null
}

variable "force_destroy_bucket" {
  description = "Let `terraform destroy` delete the bucket with every object in it. Leave false outside experiments."
  type        = bool
  default     = false
}

# ---- operations ----------------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Days the CloudWatch log group keeps broker and etcd logs (INFO level: state changes, not per-request lines)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "enable_ssm_session_manager" {
  description = "Attach AmazonSSMManagedInstanceCore to the instance roles, so operators get a shell through SSM Session Manager (no SSH port or key pair exists)."
  type        = bool
  default     = true
}

variable "nlb_deletion_protection" {
  description = "Deletion protection of the load balancer (set false before `terraform destroy`)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}
