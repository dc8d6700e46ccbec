//! Configuration of the AWS adapters (plain data; no environment reading).

use infraai_core::{Cidr, Error, Result, Secret};

/// What the HCL generator needs beyond the plan.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    /// Region used when the plan's region is not an AWS region (planners
    /// default to GCP names such as `us-central1`). Default `us-east-1`.
    pub default_region: String,
    /// Default of the `ami_id` variable. `None` leaves the variable without a
    /// default, so `terraform plan` asks for it (validate does not need it).
    pub ami_id: Option<String>,
    /// Source ranges allowed to reach HTTP (80) and HTTPS (443). Default
    /// `0.0.0.0/0`.
    pub http_ranges: Vec<Cidr>,
    /// Source ranges allowed to reach SSH (22). Default none: no SSH rule.
    pub ssh_ranges: Vec<Cidr>,
    /// The root volume of each instance in GiB; `None` (the default): the
    /// AMI's own size.
    pub root_volume_gib: Option<u32>,
    /// One endpoint for every AWS service, for an AWS API emulator (moto in
    /// server mode, LocalStack): the provider gets an `endpoints` block for
    /// each service the configuration uses, and skips the credential
    /// validation, account-id lookup and metadata API that only real AWS
    /// answers. `None` (the default): real AWS.
    pub endpoint_url: Option<String>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            default_region: "us-east-1".into(),
            ami_id: None,
            http_ranges: vec![Cidr {
                addr: std::net::Ipv4Addr::UNSPECIFIED.into(),
                prefix: 0,
            }],
            ssh_ranges: vec![],
            root_volume_gib: None,
            endpoint_url: None,
        }
    }
}

impl AwsConfig {
    /// Checks the AMI id shape (`ami-` + hex) and the region name.
    pub fn validate(&self) -> Result<()> {
        if !is_aws_region(&self.default_region) {
            return Err(Error::invalid(
                "AWS region",
                format!("{:?} is not an AWS region name", self.default_region),
            ));
        }
        if let Some(url) = &self.endpoint_url {
            let ok = url.starts_with("http://") || url.starts_with("https://");
            if !ok || url.contains(char::is_whitespace) || url.contains('"') {
                return Err(Error::invalid(
                    "AWS endpoint URL",
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
        }
        if let Some(ami) = &self.ami_id {
            let ok = ami.strip_prefix("ami-").is_some_and(|h| {
                !h.is_empty() && h.len() <= 32 && h.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !ok {
                return Err(Error::invalid(
                    "AMI id",
                    "must be ami- followed by hex digits",
                ));
            }
        }
        Ok(())
    }
}

/// Whether `s` looks like an AWS region (`us-east-1`, `eu-central-2`,
/// `us-gov-west-1`, `ap-southeast-3`).
pub fn is_aws_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let letters = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    match parts.as_slice() {
        [geo, words @ .., n] if (1..=2).contains(&words.len()) => {
            geo.len() == 2
                && letters(geo)
                && words.iter().all(|w| letters(w))
                && n.parse::<u8>().is_ok()
        }
        _ => false,
    }
}

/// Static AWS credentials for the API clients (SigV4). The secret key and
/// session token never appear in logs or errors.
#[derive(Clone, Debug)]
pub struct AwsCredentials {
    /// Access key id (not secret; it appears in the `Authorization` header).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
}

/// Where an AWS API client talks to.
#[derive(Clone, Debug)]
pub struct ApiEndpoint {
    /// Region, used in the SigV4 scope.
    pub region: String,
    /// Base URL, e.g. `https://ec2.us-east-1.amazonaws.com` (a mock in tests).
    pub base_url: String,
}

impl ApiEndpoint {
    /// The public endpoint of `service` (`ec2`, `monitoring`) in `region`.
    pub fn public(service: &str, region: &str) -> Self {
        Self {
            region: region.into(),
            base_url: format!("https://{service}.{region}.amazonaws.com"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_amis() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-3",
        ] {
            assert!(is_aws_region(ok), "{ok}");
        }
        for bad in ["us-central1", "europe-west1", "", "us-east-x", "US-EAST-1"] {
            assert!(!is_aws_region(bad), "{bad}");
        }
        let mut c = AwsConfig::default();
        assert!(c.validate().is_ok());
        c.ami_id = Some("ami-0abc123".into());
        assert!(c.validate().is_ok());
        c.ami_id = Some("ami-\"}".into());
        assert!(c.validate().is_err());
    }

    #[test]
    fn an_endpoint_is_an_http_url() {
        let with = |url: &str| AwsConfig {
            endpoint_url: Some(url.into()),
            ..AwsConfig::default()
        };
        assert!(with("http://127.0.0.1:4566").validate().is_ok());
        assert!(with("https://localstack.internal").validate().is_ok());
        for bad in ["127.0.0.1:4566", "ftp://x", "http://a b", "http://x\"}"] {
            let e = with(bad).validate().unwrap_err().to_string();
            assert!(e.contains("not an http(s) URL"), "{bad}: {e}");
        }
    }
}
