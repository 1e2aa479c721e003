//! A credentials URI: `GET` answers with temporary credentials in Alibaba's
//! JSON form (`AccessKeyId`, `AccessKeySecret`, `SecurityToken`,
//! `Expiration`), as the Alibaba Cloud credential libraries read the URL
//! from `ALIBABA_CLOUD_CREDENTIALS_URI`. Any sidecar or vault agent that
//! mints STS tokens can stand behind one.

use std::time::Duration;

use super::{exchange, without_query, KeyAnswer, Temporary};
use crate::Error;

/// GET `url` and read Alibaba's credentials answer.
pub(super) async fn fetch(http: &reqwest::Client, url: &str) -> Result<Temporary, Error> {
    let from = |problem: String| Error::Credentials {
        from: format!("the credentials URI {}", without_query(url)),
        problem,
    };
    let (status, body) = exchange(http.get(url).timeout(Duration::from_secs(10)), &from).await?;
    if !status.is_success() {
        return Err(from(format!("answered {status}")));
    }
    let answer: KeyAnswer = serde_json::from_slice(&body)
        .map_err(|e| from(format!("not the credentials JSON: {e}")))?;
    answer.into_temporary(&from)
}
