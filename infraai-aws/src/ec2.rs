//! EC2 Query API calls: `RebootInstances`, `AuthorizeSecurityGroupIngress`,
//! `RevokeSecurityGroupIngress` — each with a `DryRun` form for previews.

use crate::client::AwsApi;
use infraai_core::{Cidr, FirewallChange, Protocol, Result};

const VERSION: &str = "2016-11-15";

/// An EC2 client (SigV4, Query API).
#[derive(Clone, Debug)]
pub struct Ec2Client {
    api: AwsApi,
}

impl Ec2Client {
    /// A client over a signed API for the `ec2` service.
    pub fn new(api: AwsApi) -> Self {
        Self { api }
    }

    /// Calls `action`; with `dry_run`, AWS only checks permissions and
    /// answers `DryRunOperation` (which is success here). Returns the
    /// request id.
    async fn call(
        &self,
        action: &str,
        mut params: Vec<(String, String)>,
        dry_run: bool,
    ) -> Result<String> {
        if dry_run {
            params.push(("DryRun".into(), "true".into()));
        }
        match self.api.query(action, VERSION, &params).await? {
            Ok(xml) => Ok(crate::client::xml_text(&xml, "requestId").unwrap_or_default()),
            Err(e) if dry_run && e.code == "DryRunOperation" => Ok(String::new()),
            Err(e) => Err(self.api.error(action, e)),
        }
    }

    /// Reboots one instance (`dry_run`: only checks that it would be allowed).
    pub async fn reboot(&self, instance_id: &str, dry_run: bool) -> Result<String> {
        self.call(
            "RebootInstances",
            vec![("InstanceId.1".into(), instance_id.into())],
            dry_run,
        )
        .await
    }

    /// Adds (`change.allow`) or removes the ingress rules of a firewall
    /// change on a security group: one permission per port.
    pub async fn change_ingress(
        &self,
        group_id: &str,
        change: &FirewallChange,
        dry_run: bool,
    ) -> Result<String> {
        let action = if change.allow {
            "AuthorizeSecurityGroupIngress"
        } else {
            "RevokeSecurityGroupIngress"
        };
        let protocol = match change.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let mut params = vec![("GroupId".to_string(), group_id.to_string())];
        for (i, port) in change.ports.iter().enumerate() {
            let p = format!("IpPermissions.{}", i + 1);
            params.push((format!("{p}.IpProtocol"), protocol.into()));
            params.push((format!("{p}.FromPort"), port.to_string()));
            params.push((format!("{p}.ToPort"), port.to_string()));
            let (v4, v6): (Vec<&Cidr>, Vec<&Cidr>) =
                change.source_ranges.iter().partition(|c| c.addr.is_ipv4());
            for (j, c) in v4.iter().enumerate() {
                params.push((format!("{p}.IpRanges.{}.CidrIp", j + 1), c.to_string()));
                params.push((
                    format!("{p}.IpRanges.{}.Description", j + 1),
                    "infraai".into(),
                ));
            }
            for (j, c) in v6.iter().enumerate() {
                params.push((format!("{p}.Ipv6Ranges.{}.CidrIpv6", j + 1), c.to_string()));
            }
        }
        self.call(action, params, dry_run).await
    }
}
