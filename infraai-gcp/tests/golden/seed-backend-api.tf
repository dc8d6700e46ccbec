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

variable "machine_type_api" {
  description = "Machine type of api."
  type        = string
  default     = "e2-medium"
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

resource "google_compute_instance" "api" {
  name         = "api"
  machine_type = var.machine_type_api
  zone         = var.zone
  tags         = ["api"]
  labels = {
    "infraai-managed"  = "true"
    "infraai-resource" = "api"
    "infraai-run"      = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
  }
  allow_stopping_for_update = true
  metadata_startup_script   = "#!/bin/sh\nset -e\nif ! command -v nginx >/dev/null 2>&1; then\n  apt-get update\n  DEBIAN_FRONTEND=noninteractive apt-get install -y nginx\nfi\nsystemctl enable --now nginx\n"
  boot_disk {
    initialize_params {
      image = "debian-cloud/debian-12"
    }
  }
  network_interface {
    network = "default"
    access_config {}
  }
}

resource "google_compute_firewall" "api-firewall" {
  name          = "api-firewall"
  description   = "infraai: HTTP and HTTPS to the service"
  network       = "default"
  direction     = "INGRESS"
  source_ranges = ["0.0.0.0/0"]
  target_tags   = ["api"]
  allow {
    protocol = "tcp"
    ports    = ["80", "443"]
  }
}

resource "google_compute_firewall" "api-firewall_ssh" {
  name          = "api-firewall-ssh"
  description   = "infraai: SSH from the configured ranges only"
  network       = "default"
  direction     = "INGRESS"
  source_ranges = ["203.0.113.0/24"]
  target_tags   = ["api"]
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

resource "google_monitoring_alert_policy" "api_cpu_high" {
  display_name          = "infraai api cpu_high (run 2e3f4a5b)"
  combiner              = "OR"
  enabled               = true
  severity              = "CRITICAL"
  notification_channels = [google_monitoring_notification_channel.ops_webhook.name]
  user_labels = {
    "infraai-resource"      = "api"
    "infraai-resource-type" = "gce_instance"
    "infraai-profile"       = "cpu_high"
    "infraai-run"           = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
  }
  conditions {
    display_name = "api: compute.googleapis.com/instance/cpu/utilization > 0.8 for 60s"
    condition_threshold {
      filter          = "metric.type = \"compute.googleapis.com/instance/cpu/utilization\" AND resource.type = \"gce_instance\" AND metric.label.instance_name = \"api\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0.8
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
    content   = "infraai watches api (gce_instance) for cpu_high: compute.googleapis.com/instance/cpu/utilization > 0.8 for 60s. The agent decides and asks for approval on its ops webhook."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "api_disk_read_high" {
  display_name          = "infraai api disk_read_high (run 2e3f4a5b)"
  combiner              = "OR"
  enabled               = true
  severity              = "WARNING"
  notification_channels = [google_monitoring_notification_channel.ops_webhook.name]
  user_labels = {
    "infraai-resource"      = "api"
    "infraai-resource-type" = "gce_instance"
    "infraai-profile"       = "disk_read_high"
    "infraai-run"           = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
  }
  conditions {
    display_name = "api: compute.googleapis.com/instance/disk/read_bytes_count > 100000000 for 120s"
    condition_threshold {
      filter          = "metric.type = \"compute.googleapis.com/instance/disk/read_bytes_count\" AND resource.type = \"gce_instance\" AND metric.label.instance_name = \"api\""
      comparison      = "COMPARISON_GT"
      threshold_value = 100000000.0
      duration        = "120s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_RATE"
      }
      trigger {
        count = 1
      }
    }
  }
  documentation {
    content   = "infraai watches api (gce_instance) for disk_read_high: compute.googleapis.com/instance/disk/read_bytes_count > 100000000 for 120s. The agent decides and asks for approval on its ops webhook."
    mime_type = "text/markdown"
  }
}

output "public_ips" {
  description = "External IP per instance (or group balancer)."
  value = {
    "api" = google_compute_instance.api.network_interface[0].access_config[0].nat_ip
  }
}

output "urls" {
  description = "HTTP URL per instance (or group balancer)."
  value = {
    "api" = "http://${google_compute_instance.api.network_interface[0].access_config[0].nat_ip}/"
  }
}
