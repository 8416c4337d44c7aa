//! Apply's own logic as a table, against an in-memory cloud: what it sends in which
//! order, and what it does when a step fails. The CLI is tested against the EC2 server.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use super::{Outcome, Progress, Settings, Status, apply};
use crate::cloud::CloudErrorKind;
use crate::cloud::memory::{Fault, MemoryCloud};
use crate::desired::{
    APPLY_TAG, Desired, KeyName, KeyPairSpec, KeySource, KeyType, PROJECT_TAG, TagSet,
};
use crate::keys::{FileCustody, Secret, public_key_of_private};
use crate::observe::observe;
use crate::plan::fixtures::scope;
use crate::plan::{Options, plan};
use crate::resource::RemoteKeyPair;

struct Quiet;
impl Progress for Quiet {
    fn step(&self, _: &str) {}
}

fn desired(dir: &Path, regions: &[&str]) -> Desired {
    Desired {
        project: "lab".into(),
        keypairs: vec![KeyPairSpec {
            name: KeyName::parse("lab").unwrap(),
            scopes: regions.iter().map(|r| scope(r)).collect(),
            key_type: KeyType::Ed25519,
            source: KeySource::Aws,
            tags: TagSet::from_checked([(PROJECT_TAG.to_owned(), "lab".to_owned())].into()),
            purge_tags: false,
            ppk: None,
            seat: "lab".into(),
            output: Some(dir.join("keys/lab.pem")),
            output_display: "keys/lab.pem".into(),
        }],
        orphan_dir: dir.join("keys"),
        accounts: Vec::new(),
        former_scopes: Vec::new(),
        store: None,
        state: None,
    }
}

fn settings(unsaved: &[(&str, &str)]) -> Settings {
    Settings {
        concurrency: 4,
        now: 7,
        apply_id: "00new".into(),
        unsaved: unsaved
            .iter()
            .map(|(id, name)| ((*id).to_owned(), (*name).to_owned()))
            .collect(),
        journal: None,
        deadline: tokio::time::Instant::now() + std::time::Duration::from_mins(1),
        stop: super::Stop::default(),
        broken: Arc::default(),
        listing_lag: std::time::Duration::from_secs(1),
        kms_key_id: None,
    }
}

/// What the cloud and the files hold now (nothing deleted or made before, by the journal).
async fn observe_now(cloud: &Arc<MemoryCloud>, d: &Desired) -> crate::observe::Observed {
    observe(
        cloud,
        d,
        FileCustody,
        &std::collections::BTreeSet::new(),
        &std::collections::BTreeMap::new(),
    )
    .await
    .unwrap()
}

/// Observe, plan and apply once; the outcomes in plan order.
async fn run(cloud: &Arc<MemoryCloud>, d: &Desired, settings: Settings) -> Vec<Outcome> {
    let observed = observe_now(cloud, d).await;
    let options = Options {
        unsaved: settings.unsaved.clone(),
        ..Options::default()
    };
    let p = plan(d, &observed, &options);
    apply(cloud, &p, FileCustody, settings, Arc::new(Quiet))
        .await
        .outcomes
}

fn statuses(outcomes: &[Outcome]) -> Vec<Status> {
    outcomes.iter().map(|o| o.status).collect()
}

fn file_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    public_key_of_private(&Secret::new(text))
        .unwrap()
        .to_openssh()
}

#[tokio::test]
async fn the_key_is_created_and_saved_before_it_is_imported_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = desired(dir.path(), &["us-east-1", "eu-west-1"]);
    let cloud = Arc::new(MemoryCloud::default());
    let outcomes = run(&cloud, &d, settings(&[])).await;
    assert_eq!(statuses(&outcomes), [Status::Done, Status::Done]);
    assert_eq!(
        cloud.log(),
        [
            "DescribeKeyPairs eu-west-1 ",
            "DescribeKeyPairs us-east-1 ",
            "CreateKeyPair us-east-1 lab",
            "ImportKeyPair eu-west-1 lab",
        ]
    );
    let path = dir.path().join("keys/lab.pem");
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o400);
    for region in ["us-east-1", "eu-west-1"] {
        let pair = cloud.get(region, "lab").unwrap();
        assert_eq!(pair.public_key.unwrap().to_openssh(), file_key(&path));
    }
    assert_eq!(
        cloud
            .get("us-east-1", "lab")
            .unwrap()
            .tags
            .get(APPLY_TAG)
            .map(String::as_str),
        Some("00new")
    );
}

#[tokio::test]
async fn a_created_key_that_cannot_be_saved_is_deleted_again_and_nothing_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let d = desired(dir.path(), &["us-east-1", "eu-west-1"]);
    let cloud = Arc::new(MemoryCloud::default());
    // Someone writes the key file while EC2 makes the key: labctl must not overwrite it.
    let path = dir.path().join("keys/lab.pem");
    let racer = path.clone();
    cloud.after_create(move || std::fs::write(&racer, "someone else's").unwrap());
    let outcomes = run(&cloud, &d, settings(&[])).await;
    assert_eq!(statuses(&outcomes), [Status::Failed, Status::Skipped]);
    let error = &outcomes[0].error.as_ref().unwrap().message;
    assert!(error.contains("deleted again"), "{error}");
    assert!(
        cloud
            .log()
            .contains(&"DeleteKeyPair us-east-1 lab".to_owned())
    );
    assert!(cloud.get("us-east-1", "lab").is_none());
    assert!(cloud.get("eu-west-1", "lab").is_none());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone else's");
}

#[tokio::test]
async fn a_private_key_cut_short_in_the_answer_is_never_saved_and_the_key_pair_goes() {
    let dir = tempfile::tempdir().unwrap();
    let d = desired(dir.path(), &["us-east-1", "eu-west-1"]);
    let cloud = Arc::new(MemoryCloud::default());
    cloud.fault("CreateKeyPair", Fault::CutMaterial);
    let outcomes = run(&cloud, &d, settings(&[])).await;
    assert_eq!(statuses(&outcomes), [Status::Failed, Status::Skipped]);
    let error = &outcomes[0].error.as_ref().unwrap().message;
    assert!(
        error.contains("did not hold the whole private key") && error.contains("deleted again"),
        "{error}"
    );
    assert!(!dir.path().join("keys/lab.pem").exists());
    assert!(cloud.get("us-east-1", "lab").is_none());
    assert!(cloud.get("eu-west-1", "lab").is_none());
    // Whole again, the next apply creates and saves the key.
    let outcomes = run(&cloud, &d, settings(&[])).await;
    assert_eq!(statuses(&outcomes), [Status::Done, Status::Done]);
    let path = dir.path().join("keys/lab.pem");
    let pair = cloud.get("us-east-1", "lab").unwrap();
    assert_eq!(pair.public_key.unwrap().to_openssh(), file_key(&path));
}

#[tokio::test]
async fn a_lost_create_answer_is_cleaned_up_when_it_can_be_and_left_to_the_journal_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = desired(dir.path(), &["us-east-1"]);
    let cloud = Arc::new(MemoryCloud::default());
    cloud.fault(
        "CreateKeyPair",
        Fault::LoseAnswer(CloudErrorKind::Unreachable),
    );
    let outcomes = run(&cloud, &d, settings(&[])).await;
    assert_eq!(statuses(&outcomes), [Status::Failed]);
    assert!(
        outcomes[0]
            .error
            .as_ref()
            .map(|p| p.message.as_str())
            .unwrap()
            .contains("nothing is lost")
    );
    assert!(cloud.get("us-east-1", "lab").is_none());

    // The retries ended in throttling, and every look that would clean up fails too,
    // for as long as the listing may lag.
    let cloud = Arc::new(MemoryCloud::default());
    cloud.fault(
        "CreateKeyPair",
        Fault::LoseAnswer(CloudErrorKind::Throttled),
    );
    let observed = observe_now(&cloud, &d).await;
    let p = plan(&d, &observed, &Options::default());
    for _ in 0..10 {
        cloud.fault("DescribeKeyPairs", Fault::Fail(CloudErrorKind::Other));
    }
    let report = apply(&cloud, &p, FileCustody, settings(&[]), Arc::new(Quiet)).await;
    assert_eq!(statuses(&report.outcomes), [Status::Failed]);
    assert!(
        cloud.get("us-east-1", "lab").is_some(),
        "left for the next run"
    );
    let hint = report.outcomes[0].error.as_ref().unwrap().hint.clone();
    assert!(
        hint.as_deref().unwrap_or_default().contains("`lab`"),
        "the key is named: {hint:?}"
    );
    cloud.clear_faults();
    assert!(!dir.path().join("keys/lab.pem").exists());

    // The next run knows from the journal that nobody saved it: replaced.
    let outcomes = run(&cloud, &d, settings(&[("00new", "lab")])).await;
    assert_eq!(statuses(&outcomes), [Status::Done]);
    assert_eq!(outcomes[0].action.change().as_str(), "replace");
}

/// A create whose answer was lost while the listing lags: the look waits the lag out,
/// finds the key pair this apply made and deletes it again in the same run.
/// A plan that creates one key pair, and a cloud that will make it and lose the answer.
async fn a_create_whose_answer_is_lost(dir: &Path) -> (Arc<MemoryCloud>, crate::plan::Plan) {
    let d = desired(dir, &["us-east-1"]);
    let cloud = Arc::new(MemoryCloud::default());
    let observed = observe_now(&cloud, &d).await;
    let p = plan(&d, &observed, &Options::default());
    cloud.fault(
        "CreateKeyPair",
        Fault::LoseAnswer(CloudErrorKind::Unreachable),
    );
    (cloud, p)
}

#[tokio::test]
async fn a_lost_create_is_looked_for_until_the_listing_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let (cloud, p) = a_create_whose_answer_is_lost(dir.path()).await;
    // The first look finds nothing listed yet (the lag), the next one finds it.
    cloud.fault("DescribeKeyPairs", Fault::Hide);
    let report = apply(&cloud, &p, FileCustody, settings(&[]), Arc::new(Quiet)).await;
    assert_eq!(statuses(&report.outcomes), [Status::Failed]);
    let message = &report.outcomes[0].error.as_ref().unwrap().message;
    assert!(message.contains("nothing is lost"), "{message}");
    assert!(cloud.get("us-east-1", "lab").is_none());
}

#[tokio::test]
async fn a_lost_create_is_not_looked_for_once_nothing_can_be_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (cloud, p) = a_create_whose_answer_is_lost(dir.path()).await;
    // The run's --timeout has passed: every look is refused unsent.
    for _ in 0..100 {
        cloud.fault("DescribeKeyPairs", Fault::Fail(CloudErrorKind::NotSent));
    }
    let started = std::time::Instant::now();
    let report = apply(&cloud, &p, FileCustody, settings(&[]), Arc::new(Quiet)).await;
    // Not the listing lag's window (1 s here, 10 s in a run): at once.
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
    assert_eq!(statuses(&report.outcomes), [Status::Failed]);
    let hint = report.outcomes[0]
        .error
        .as_ref()
        .unwrap()
        .hint
        .clone()
        .unwrap_or_default();
    assert!(hint.contains("the next apply finds it"), "{hint}");
}

#[tokio::test]
async fn a_late_create_of_an_unsaved_key_is_replaced_but_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let d = desired(dir.path(), &["us-east-1"]);
    let late = |apply_id: &str| RemoteKeyPair {
        name: "lab".into(),
        id: Some("key-late".into()),
        fingerprint: None,
        key_type: Some(KeyType::Ed25519),
        public_key: None,
        tags: [
            (PROJECT_TAG.to_owned(), "lab".to_owned()),
            (APPLY_TAG.to_owned(), apply_id.to_owned()),
        ]
        .into(),
    };
    for (tag, unsaved, expected) in [
        ("00old", true, Status::Done),
        ("00old", false, Status::Conflict),
        ("00other", true, Status::Conflict),
    ] {
        let cloud = Arc::new(MemoryCloud::default());
        let observed = observe_now(&cloud, &d).await;
        let p = plan(&d, &observed, &Options::default());
        // An earlier run's request lands after this run looked.
        cloud.put("us-east-1", late(tag));
        let journal: &[(&str, &str)] = if unsaved { &[("00old", "lab")] } else { &[] };
        let report = apply(&cloud, &p, FileCustody, settings(journal), Arc::new(Quiet)).await;
        assert_eq!(statuses(&report.outcomes), [expected], "{tag} {unsaved}");
        let now = cloud.get("us-east-1", "lab").unwrap();
        assert_eq!(
            now.id.as_deref() == Some("key-late"),
            expected != Status::Done
        );
    }
}
