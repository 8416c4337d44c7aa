//! The text files of a bundle: its `README.txt` (what it is, how to check it, how to connect)
//! and its `ssh_config` snippet.

use std::fmt::Write as _;

use crate::desired::{KeyPairSpec, KeySource};
use crate::keys::{PublicKey, Secret, fingerprint};

pub(super) fn ssh_config(name: &str) -> String {
    format!(
        "# {name}: add this to ~/.ssh/config, set HostName to your instance's address (and User\n\
         # to ubuntu on Ubuntu), put {name}.pem in ~/.ssh/, then run: ssh {name}\n\
         Host {name}\n    HostName ADDRESS\n    User ec2-user\n    IdentityFile ~/.ssh/{name}.pem\n    IdentitiesOnly yes\n"
    )
}

/// Where the key pair is: `Regions:` in the caller's own account; `Where:` with each
/// account's id (what an attendee sees in the console's account menu) and name otherwise.
fn places(spec: &KeyPairSpec) -> String {
    use crate::resource::Account;
    if spec.scopes.iter().all(|s| s.account == Account::Caller) {
        let regions: Vec<String> = spec.scopes.iter().map(ToString::to_string).collect();
        return format!("Regions:     {}\n", regions.join(", "));
    }
    let places: Vec<String> = spec
        .scopes
        .iter()
        .map(|s| match &s.account {
            Account::Member(m) => format!("account {} ({}), region {}", m.id, m.name, s.region),
            Account::Caller => format!("region {}", s.region),
        })
        .collect();
    format!("Where:       {}\n", places.join("; "))
}

/// The README of a bundle: what it is, how to check it, how to connect.
pub(super) fn readme(
    spec: &KeyPairSpec,
    project: &str,
    secret: &Secret,
    public: &PublicKey,
    encrypted: bool,
) -> String {
    let name = spec.name.as_str();
    let mut text = format!("Your key pair for {project}\n\nKey pair:    {name}\n");
    let _ = writeln!(text, "Seat:        {}", spec.seat);
    text.push_str(&places(spec));
    let _ = writeln!(text, "Public key:  {}", public.to_openssh());
    let mut files = vec![format!("{name}.pem (OpenSSH, for ssh)")];
    if spec.ppk.is_some() {
        files.push(format!("{name}.ppk (PuTTY and WinSCP)"));
    }
    let _ = writeln!(text, "Files:       {}", files.join(", "));
    text.push_str(if encrypted {
        "Passphrase:  yes; your instructor gives it to you separately\n"
    } else {
        "Passphrase:  none\n"
    });
    text.push_str(
        "\nFingerprint, as the EC2 console shows it (EC2 > Key pairs); check that it matches:\n",
    );
    for (i, region) in spec.scopes.iter().enumerate() {
        let made_here = i == 0 && matches!(spec.source, KeySource::Aws);
        let shown = if made_here {
            fingerprint::created(secret, public)
        } else {
            fingerprint::imported(public)
        };
        let _ = writeln!(
            text,
            "  {:<16} {}",
            region.to_string(),
            shown.unwrap_or_else(|| "(not computed)".to_owned())
        );
    }
    let _ = writeln!(
        text,
        "\nConnect (your instructor gives you the instance's address; the user is ec2-user on\n\
         Amazon Linux, ubuntu on Ubuntu):\n\n\
         Linux and macOS:\n\
         \x20 mkdir -p ~/.ssh && cp {name}.pem ~/.ssh/ && chmod 600 ~/.ssh/{name}.pem\n\
         \x20 ssh -i ~/.ssh/{name}.pem ec2-user@ADDRESS\n\
         \x20 (or add ssh_config to ~/.ssh/config, set its HostName, and run: ssh {name})\n\n\
         Windows, PowerShell (OpenSSH is built in):\n\
         \x20 copy {name}.pem $env:USERPROFILE\\.ssh\\\n\
         \x20 icacls $env:USERPROFILE\\.ssh\\{name}.pem /inheritance:r /grant:r \"$($env:USERNAME):R\"\n\
         \x20 ssh -i $env:USERPROFILE\\.ssh\\{name}.pem ec2-user@ADDRESS"
    );
    if spec.ppk.is_some() {
        let _ = writeln!(
            text,
            "\nWindows, PuTTY 0.75 or later:\n\
             \x20 Session > Host Name: ec2-user@ADDRESS\n\
             \x20 Connection > SSH > Auth > Credentials > Private key file: {name}.ppk"
        );
    }
    if encrypted {
        text.push_str(
            "\nssh, PuTTY and WinSCP ask for the passphrase when they use the key. Type it exactly\n\
             as your instructor gives it, dashes included: six groups of four letters and digits,\n\
             like abcd-2345-efgh-6789-jkmn-pqrs (no 0, 1, i, l or o in it).\n",
        );
    }
    text.push_str("\nKeep the private key to yourself: never e-mail it on, never commit it.\n");
    text
}

/// The lines of a README that say which seat, key, formats and protection a bundle holds.
pub(super) fn identity(readme: &str) -> Vec<String> {
    readme
        .lines()
        .filter(|l| {
            [
                "Seat:",
                "Regions:",
                "Where:",
                "Public key:",
                "Files:",
                "Passphrase:",
            ]
            .iter()
            .any(|prefix| l.starts_with(prefix))
        })
        .map(str::to_owned)
        .collect()
}
