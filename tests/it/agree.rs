//! The agreement scenario (`agreement.rs`) against the local server, in the normal suite; the
//! same scenario runs against real EC2 in `tests/live.rs` when asked.

use crate::agreement::{Cloud, ec2_agrees_with_labctl};

#[test]
fn the_local_server_agrees_with_labctl_where_ec2_does() {
    let cloud = Cloud::Local {
        endpoint: crate::support::server().endpoint(),
    };
    ec2_agrees_with_labctl(&cloud);
}
