terraform {
  required_version = ">= 1.5.0"
  required_providers {
    google = {
      "source"  = "hashicorp/google"
      "version" = "~> 6.50"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
  zone    = var.zone
}

variable "project_id" {
  description = "GCP project to deploy into."
  type        = string
  default     = "demo-project"
}

variable "region" {
  description = "GCP region."
  type        = string
  default     = "us-central1"
}

variable "zone" {
  description = "GCP zone for instances and instance groups."
  type        = string
  default     = "us-central1-a"
}

variable "machine_type_web" {
  description = "Machine type of web."
  type        = string
  default     = "e2-standard-4"
}

variable "machine_type_db" {
  description = "Cloud SQL tier of db."
  type        = string
  default     = "db-custom-1-3840"
}

variable "ops_webhook_url" {
  description = "The agent's alert webhook (POST /ops/webhook)."
  type        = string
  default     = "https://infraai.example.com/ops/webhook"
}

variable "ops_webhook_token" {
  description = "Token the agent's webhook accepts (pass it as TF_VAR_ops_webhook_token)."
  type        = string
  sensitive   = true
}

resource "google_compute_instance_template" "web" {
  name_prefix  = "web-"
  machine_type = var.machine_type_web
  tags         = ["web"]
  labels = {
    "infraai-managed"  = "true"
    "infraai-resource" = "web"
    "infraai-run"      = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
  }
  metadata = {
    "startup-script" = "#!/bin/sh\nset -e\nif ! command -v nginx >/dev/null 2>&1; then\n  apt-get update\n  DEBIAN_FRONTEND=noninteractive apt-get install -y nginx\nfi\nsystemctl enable --now nginx\n"
  }
  disk {
    source_image = "debian-cloud/debian-12"
    boot         = true
    auto_delete  = true
  }
  network_interface {
    network = "default"
    access_config {}
  }
  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_target_pool" "web" {
  name   = "web"
  region = var.region
}

resource "google_compute_instance_group_manager" "web" {
  name               = "web"
  zone               = var.zone
  base_instance_name = "web"
  target_pools       = [google_compute_target_pool.web.self_link]
  version {
    instance_template = google_compute_instance_template.web.self_link_unique
  }
  named_port {
    name = "http"
    port = 80
  }
}

resource "google_compute_autoscaler" "web" {
  name   = "web"
  zone   = var.zone
  target = google_compute_instance_group_manager.web.id
  autoscaling_policy {
    min_replicas    = 2
    max_replicas    = 4
    cooldown_period = 60
    cpu_utilization {
      target = 0.6
    }
  }
}

resource "google_compute_forwarding_rule" "web" {
  name                  = "web"
  region                = var.region
  load_balancing_scheme = "EXTERNAL"
  ip_protocol           = "TCP"
  port_range            = "80"
  target                = google_compute_target_pool.web.id
}

resource "google_sql_database_instance" "db" {
  name                = "db-2e3f4a5b"
  region              = var.region
  database_version    = "POSTGRES_16"
  deletion_protection = true
  settings {
    tier    = var.machine_type_db
    edition = "ENTERPRISE"
    user_labels = {
      "infraai-managed"  = "true"
      "infraai-resource" = "db"
      "infraai-run"      = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    }
    backup_configuration {
      enabled = true
    }
  }
}

resource "google_compute_firewall" "web-firewall" {
  name          = "web-firewall"
  description   = "infraai: HTTP and HTTPS to the service"
  network       = "default"
  direction     = "INGRESS"
  source_ranges = ["0.0.0.0/0"]
  target_tags   = ["web"]
  allow {
    protocol = "tcp"
    ports    = ["80", "443"]
  }
}

resource "google_compute_firewall" "web-firewall_ssh" {
  name          = "web-firewall-ssh"
  description   = "infraai: SSH from the configured ranges only"
  network       = "default"
  direction     = "INGRESS"
  source_ranges = ["203.0.113.0/24"]
  target_tags   = ["web"]
  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}

resource "google_monitoring_notification_channel" "ops_webhook" {
  display_name = "infraai ops webhook (run 2e3f4a5b)"
  type         = "webhook_tokenauth"
  labels = {
    "url" = "${var.ops_webhook_url}?token=${urlencode(var.ops_webhook_token)}"
  }
  user_labels = {
    "infraai-managed"  = "true"
    "infraai-resource" = "ops-webhook"
    "infraai-run"      = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
  }
}

resource "google_monitoring_alert_policy" "web_asg_cpu_high" {
  display_name          = "infraai web asg_cpu_high (run 2e3f4a5b)"
  combiner              = "OR"
  enabled               = true
  severity              = "CRITICAL"
  notification_channels = [google_monitoring_notification_channel.ops_webhook.name]
  user_labels = {
    "infraai-resource"      = "web"
    "infraai-resource-type" = "instance_group"
    "infraai-profile"       = "asg_cpu_high"
    "infraai-run"           = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
  }
  conditions {
    display_name = "web: compute.googleapis.com/instance/cpu/utilization > 0.7 for 120s"
    condition_threshold {
      filter          = "metric.type = \"compute.googleapis.com/instance/cpu/utilization\" AND resource.type = \"gce_instance\" AND metric.label.instance_name = monitoring.regex.full_match(\"web-[a-z0-9]{4}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0.7
      duration        = "120s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
      trigger {
        count = 1
      }
    }
  }
  documentation {
    content   = "infraai watches web (instance_group) for asg_cpu_high: compute.googleapis.com/instance/cpu/utilization > 0.7 for 120s. The agent decides and asks for approval on its ops webhook."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "db_sql_cpu_high" {
  display_name          = "infraai db sql_cpu_high (run 2e3f4a5b)"
  combiner              = "OR"
  enabled               = true
  severity              = "CRITICAL"
  notification_channels = [google_monitoring_notification_channel.ops_webhook.name]
  user_labels = {
    "infraai-resource"      = "db"
    "infraai-resource-type" = "cloudsql_database"
    "infraai-profile"       = "sql_cpu_high"
    "infraai-run"           = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
  }
  conditions {
    display_name = "db: cloudsql.googleapis.com/database/cpu/utilization > 0.75 for 60s"
    condition_threshold {
      filter          = "metric.type = \"cloudsql.googleapis.com/database/cpu/utilization\" AND resource.type = \"cloudsql_database\" AND resource.label.database_id = \"${var.project_id}:db-2e3f4a5b\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0.75
      duration        = "60s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
      trigger {
        count = 1
      }
    }
  }
  documentation {
    content   = "infraai watches db (cloudsql_database) for sql_cpu_high: cloudsql.googleapis.com/database/cpu/utilization > 0.75 for 60s. The agent decides and asks for approval on its ops webhook."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "db_sql_connections_high" {
  display_name          = "infraai db sql_connections_high (run 2e3f4a5b)"
  combiner              = "OR"
  enabled               = true
  severity              = "WARNING"
  notification_channels = [google_monitoring_notification_channel.ops_webhook.name]
  user_labels = {
    "infraai-resource"      = "db"
    "infraai-resource-type" = "cloudsql_database"
    "infraai-profile"       = "sql_connections_high"
    "infraai-run"           = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
  }
  conditions {
    display_name = "db: cloudsql.googleapis.com/database/network/connections > 100 for 60s"
    condition_threshold {
      filter          = "metric.type = \"cloudsql.googleapis.com/database/network/connections\" AND resource.type = \"cloudsql_database\" AND resource.label.database_id = \"${var.project_id}:db-2e3f4a5b\""
      comparison      = "COMPARISON_GT"
      threshold_value = 100.0
      duration        = "60s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
      trigger {
        count = 1
      }
    }
  }
  documentation {
    content   = "infraai watches db (cloudsql_database) for sql_connections_high: cloudsql.googleapis.com/database/network/connections > 100 for 60s. The agent decides and asks for approval on its ops webhook."
    mime_type = "text/markdown"
  }
}

output "public_ips" {
  description = "External IP per instance (or group balancer)."
  value = {
    "web" = google_compute_forwarding_rule.web.ip_address
  }
}

output "urls" {
  description = "HTTP URL per instance (or group balancer)."
  value = {
    "web" = "http://${google_compute_forwarding_rule.web.ip_address}/"
  }
}

output "sql_connection_names" {
  description = "Cloud SQL connection name per database."
  value = {
    "db" = google_sql_database_instance.db.connection_name
  }
}
