//! The team's state bucket over `aws-sdk-s3` (the manifest's `state: s3://bucket/prefix`):
//! the lock and the journal as objects, written only with conditional writes. labctl never
//! creates or deletes a bucket. A few retries for what may pass (a cut connection, 5xx);
//! the rest is one clear error.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::classify::{backoff, convert, transient};
use super::config::shared_config;
use super::{CloudError, CloudErrorKind, Ec2Options};
use crate::desired::Region;
use crate::resource::Scope;

/// Attempts per request, the first included.
const ATTEMPTS: u32 = 3;

/// An object's version as S3 names it (what a conditional write names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Etag(pub String);

/// An object read: its bytes and its version.
#[derive(Debug)]
pub(crate) struct StateObject {
    pub body: Vec<u8>,
    pub etag: Etag,
}

/// The state bucket and the prefix labctl keeps its objects under.
#[derive(Debug)]
pub(crate) struct Bucket {
    client: Client,
    name: String,
    prefix: String,
    /// The bucket's region, as errors name it.
    scope: Scope,
    host: String,
    profile: Option<String>,
}

fn client(shared: &aws_config::SdkConfig, region: &str, path_style: bool) -> Client {
    let config = aws_sdk_s3::config::Builder::from(shared)
        .region(aws_sdk_s3::config::Region::new(region.to_owned()))
        .force_path_style(path_style)
        .build();
    Client::from_conf(config)
}

/// The region S3 says a bucket is in, when it answered elsewhere (301, 400 with the header).
fn bucket_region<E>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    let headers = err.raw_response()?.headers();
    headers.get("x-amz-bucket-region").map(str::to_owned)
}

fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

impl Bucket {
    /// Reach `s3://bucket/prefix` with the caller's own credentials; the region is the
    /// environment's (`AWS_REGION`, the profile's), else `fallback`; a bucket elsewhere is
    /// followed to its region once [`check`](Self::check) asks.
    pub(crate) async fn connect(
        options: &Ec2Options,
        bucket: &str,
        prefix: &str,
        fallback: &Region,
    ) -> Self {
        let shared = shared_config(options).await;
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok()
            .and_then(|r| Region::parse(&r).ok())
            .unwrap_or_else(|| fallback.clone());
        let path_style = options.endpoint_url.is_some();
        let host = options.endpoint_url.as_deref().map_or_else(
            || format!("{bucket}.s3.{region}.amazonaws.com"),
            |url| super::config::host_of(Some(url), &region),
        );
        Bucket {
            client: client(&shared, region.as_str(), path_style),
            name: bucket.to_owned(),
            prefix: prefix.to_owned(),
            scope: Scope::caller(region),
            host,
            profile: options.profile.clone(),
        }
    }

    /// `s3://bucket/prefix/name`, as people read it.
    pub(crate) fn url(&self, name: &str) -> String {
        format!("s3://{}/{}", self.name, self.key(name))
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    fn error<E>(&self, operation: &'static str, err: &SdkError<E, HttpResponse>) -> CloudError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut error = convert(
            operation,
            &self.scope,
            &self.host,
            self.profile.as_deref(),
            err,
        );
        match status(err) {
            Some(404) if operation == "HeadBucket" => {
                error.kind = CloudErrorKind::NotFound;
                error.message = format!(
                    "the bucket {} does not exist (labctl never creates one)",
                    self.name
                );
            }
            Some(403) if operation == "HeadBucket" => {
                error.kind = CloudErrorKind::AccessDenied;
                error.message = format!("access to the bucket {} is denied", self.name);
            }
            Some(412) => error.kind = CloudErrorKind::Duplicate,
            _ => {}
        }
        error
    }

    /// Send with a few retries for what may pass.
    async fn send<T, E, Fut>(
        &self,
        operation: &'static str,
        call: impl Fn(Client) -> Fut,
    ) -> Result<T, (CloudError, Option<String>)>
    where
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match call(self.client.clone()).await {
                Ok(output) => return Ok(output),
                Err(err) if transient(&err) && attempts < ATTEMPTS => {
                    tokio::time::sleep(backoff(attempts)).await;
                }
                Err(err) => return Err((self.error(operation, &err), bucket_region(&err))),
            }
        }
    }

    /// Make sure the bucket is there and labctl may use it, before anything changes; a
    /// bucket in another region is followed there.
    ///
    /// # Errors
    /// The bucket is missing, or access to it is denied, or S3 cannot be reached.
    pub(crate) async fn check(&mut self, options: &Ec2Options) -> Result<(), CloudError> {
        let bucket = self.name.clone();
        match self
            .send("HeadBucket", |c| c.head_bucket().bucket(&bucket).send())
            .await
        {
            Ok(_) => Ok(()),
            Err((_, Some(region))) if region != self.scope.region.as_str() => {
                let Ok(parsed) = Region::parse(&region) else {
                    return Err(CloudError {
                        kind: CloudErrorKind::Other,
                        operation: "HeadBucket",
                        scope: self.scope.to_string(),
                        message: "S3 named a region labctl cannot read".to_owned(),
                    });
                };
                let shared = shared_config(options).await;
                self.client = client(&shared, &region, options.endpoint_url.is_some());
                self.scope = Scope::caller(parsed);
                self.send("HeadBucket", |c| c.head_bucket().bucket(&bucket).send())
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            }
            Err((err, _)) => Err(err),
        }
    }

    /// The object `name`, or `None` when there is none.
    ///
    /// # Errors
    /// Why it could not be read.
    pub(crate) async fn get(
        &self,
        name: &str,
        max: usize,
    ) -> Result<Option<StateObject>, CloudError> {
        let key = self.key(name);
        let output = match self
            .send("GetObject", |c| {
                c.get_object().bucket(&self.name).key(&key).send()
            })
            .await
        {
            Ok(output) => output,
            Err((err, _))
                if err.kind == CloudErrorKind::NotFound
                    && !err.message.starts_with("NoSuchBucket") =>
            {
                return Ok(None);
            }
            Err((err, _)) => return Err(err),
        };
        let etag = Etag(output.e_tag().unwrap_or_default().to_owned());
        if output
            .content_length()
            .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > max))
        {
            return Err(self.too_large(name));
        }
        let body = output.body.collect().await.map_err(|e| CloudError {
            kind: CloudErrorKind::Unreachable,
            operation: "GetObject",
            scope: self.scope.to_string(),
            message: format!("{} was cut short: {e}", self.url(name)),
        })?;
        let body = body.into_bytes().to_vec();
        if body.len() > max {
            return Err(self.too_large(name));
        }
        Ok(Some(StateObject { body, etag }))
    }

    fn too_large(&self, name: &str) -> CloudError {
        CloudError {
            kind: CloudErrorKind::Other,
            operation: "GetObject",
            scope: self.scope.to_string(),
            message: format!("{} is too large to be labctl's", self.url(name)),
        }
    }

    /// Write `name` only if it does not exist (`If-None-Match: *`), or only if it is still
    /// the version `etag` (`If-Match`); [`CloudErrorKind::Duplicate`] when the condition
    /// fails. Returns the new version.
    ///
    /// # Errors
    /// The condition failed, or the write was refused.
    pub(crate) async fn put(
        &self,
        name: &str,
        body: Vec<u8>,
        expected: Option<&Etag>,
    ) -> Result<Etag, CloudError> {
        let key = self.key(name);
        let output = self
            .send("PutObject", |c| {
                let request = c
                    .put_object()
                    .bucket(&self.name)
                    .key(&key)
                    .body(body.clone().into());
                match expected {
                    Some(etag) => request.if_match(&etag.0),
                    None => request.if_none_match("*"),
                }
                .send()
            })
            .await
            .map_err(|(e, _)| e)?;
        Ok(Etag(output.e_tag().unwrap_or_default().to_owned()))
    }

    /// Delete `name` (one already gone is not an error).
    ///
    /// # Errors
    /// Why it could not be deleted.
    pub(crate) async fn delete(&self, name: &str) -> Result<(), CloudError> {
        let key = self.key(name);
        match self
            .send("DeleteObject", |c| {
                c.delete_object().bucket(&self.name).key(&key).send()
            })
            .await
        {
            Err((err, _)) if err.kind != CloudErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}
