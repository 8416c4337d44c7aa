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

/// The local server answers each `DescribeKeyPairs` as it was asked, even side by side: a
/// listing that asks for public keys gets every one of them while listings that do not ask run
/// at the same time, as EC2 does. (moto keeps what an answer leaves out in one dictionary
/// shared by every request; `tests/it/moto_server.py` gives each request its own. Without
/// that, a check of the soak now and then read a key pair without its key, under the full
/// suite's load, and took it for a lost key.)
#[test]
fn side_by_side_listings_each_get_what_they_asked_for() {
    use crate::support::{server, unique};
    // A region no other test uses, so the listing holds only these key pairs.
    let region = "ap-southeast-3";
    let prefix = unique("side");
    for i in 0..150 {
        let made = server().ec2_query(
            region,
            &format!(
                "Action=CreateKeyPair&Version=2016-11-15&KeyType=ed25519&KeyName={prefix}-{i}"
            ),
        );
        assert!(made.contains("<keyMaterial>"), "{made}");
    }
    let wrong = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|threads| {
        for thread in 0..8 {
            let wrong = &wrong;
            threads.spawn(move || {
                let include = thread % 2 == 0;
                let body = if include {
                    "Action=DescribeKeyPairs&Version=2016-11-15&IncludePublicKey=true"
                } else {
                    "Action=DescribeKeyPairs&Version=2016-11-15"
                };
                for _ in 0..25 {
                    let answer = server().ec2_query(region, body);
                    let (pairs, keys) = (
                        answer.matches("<keyPairId>").count(),
                        answer.matches("<publicKey>").count(),
                    );
                    if pairs < 150 || keys != if include { pairs } else { 0 } {
                        wrong.lock().unwrap().push(format!(
                            "IncludePublicKey {include}: {pairs} key pairs, {keys} public keys"
                        ));
                    }
                }
            });
        }
    });
    let wrong = wrong.into_inner().unwrap();
    assert!(
        wrong.is_empty(),
        "{} of 200 answers: {wrong:?}",
        wrong.len()
    );
}
