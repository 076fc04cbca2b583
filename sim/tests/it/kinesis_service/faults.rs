//! Every fault kind as the SDK reports it, and the request limits.

use std::time::Duration;

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use shardline_sim::kinesis::{EntryFault, Failure, Fault, Refusal, ScriptedFaults};
use tokio::time::Instant;

use super::{entry, setup};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn whole_request_faults_apply_nothing() {
    let (service, client) = setup(1);
    service.set_faults(
        ScriptedFaults::new()
            .request(Some("PutRecords"), Fault::Fail(Failure::Internal))
            .request(Some("PutRecords"), Fault::Fail(Failure::Throughput))
            .request(Some("ListShards"), Fault::Fail(Failure::LimitExceeded))
            .request(Some("PutRecords"), Fault::Refuse(Refusal::AccessDenied))
            .request(Some("PutRecords"), Fault::Refuse(Refusal::NotFound))
            .request(Some("PutRecords"), Fault::LoseRequest),
    );
    let put = || {
        client
            .put_records()
            .stream_name("s")
            .records(entry("k", b"x"))
            .send()
    };
    let error = put().await.unwrap_err();
    assert_eq!(error.code(), Some("InternalFailure"));
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(500));
    let error = put().await.unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_provisioned_throughput_exceeded_exception())
    );
    let error = client
        .list_shards()
        .stream_name("s")
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_limit_exceeded_exception())
    );
    let error = put().await.unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_access_denied_exception())
    );
    let error = put().await.unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
    let error = put().await.unwrap_err();
    assert!(matches!(error, SdkError::DispatchFailure(_)), "{error:?}");
    assert!(service.stream_records("s").unwrap()["shardId-000000000000"].is_empty());
    let stats = service.stats();
    assert_eq!(
        (stats.requests["PutRecords"], stats.requests["ListShards"]),
        (5, 1)
    );
    assert_eq!(stats.entries_put, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn entry_faults_fail_single_entries_and_apply_the_others_in_order() {
    let (service, client) = setup(1);
    let faults = [
        None,
        Some(EntryFault::Throughput),
        None,
        Some(EntryFault::Internal),
        None,
    ];
    service.set_faults(ScriptedFaults::new().entries(faults));
    let entries = (0..5).map(|i| entry(&format!("k{i}"), &[i])).collect();
    let out = client
        .put_records()
        .stream_name("s")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(2));
    let codes: Vec<_> = out.records().iter().map(|r| r.error_code()).collect();
    assert_eq!(
        codes,
        [
            None,
            Some("ProvisionedThroughputExceededException"),
            None,
            Some("InternalFailure"),
            None
        ]
    );
    assert!(
        out.records()[1]
            .error_message()
            .unwrap()
            .contains("Rate exceeded for shard shardId-000000000000")
    );
    assert!(
        out.records()[1].sequence_number().is_none()
            && out.records()[2].sequence_number().is_some()
    );
    let stored = &service.stream_records("s").unwrap()["shardId-000000000000"];
    let data: Vec<u8> = stored.iter().map(|r| r.data[0]).collect();
    assert_eq!(data, [0, 2, 4]);
    let stats = service.stats();
    assert_eq!((stats.entries_put, stats.entries_failed), (3, 2));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn late_lost_and_slow_answers_after_applying() {
    let (service, client) = setup(1);
    service.set_faults(
        ScriptedFaults::new()
            .request(None, Fault::Late(Duration::from_secs(10)))
            .request(None, Fault::LoseAnswer)
            .request(None, Fault::Delay(Duration::from_secs(2))),
    );
    let put = |data: &'static str| {
        client
            .put_record()
            .stream_name("s")
            .partition_key("k")
            .data(Blob::new(data))
            .send()
    };
    let gave_up = tokio::time::timeout(Duration::from_secs(5), put("late")).await;
    assert!(gave_up.is_err(), "the caller gave up at its deadline");
    let error = put("lost").await.unwrap_err();
    assert!(matches!(error, SdkError::DispatchFailure(_)), "{error:?}");
    let started = Instant::now();
    put("slow").await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let stored = &service.stream_records("s").unwrap()["shardId-000000000000"];
    let data: Vec<&[u8]> = stored.iter().map(|r| &r.data[..]).collect();
    assert_eq!(data, [&b"late"[..], b"lost", b"slow"], "every one landed");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_sdk_retries_through_faults_with_standard_retries() {
    let (service, _) = setup(1);
    let client = service.client();
    service.set_faults(
        ScriptedFaults::new()
            .request(None, Fault::Fail(Failure::Internal))
            .request(None, Fault::LoseAnswer),
    );
    let out = client
        .put_records()
        .stream_name("s")
        .records(entry("k", b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));
    // Failed (nothing applied), lost after applying, applied again.
    assert_eq!(service.stats().requests["PutRecords"], 3);
    assert_eq!(
        service.stream_records("s").unwrap()["shardId-000000000000"].len(),
        2
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn requests_over_the_limits_are_refused_whole() {
    let (service, client) = setup(1);
    let put = |entries: Vec<PutRecordsRequestEntry>| {
        client
            .put_records()
            .stream_name("s")
            .set_records(Some(entries))
            .send()
    };
    let code = |e: SdkError<_, _>| e.code().map(str::to_owned);
    let many = vec![entry("k", b"x"); 501];
    assert_eq!(
        code(put(many).await.unwrap_err()).as_deref(),
        Some("ValidationException")
    );
    let big = vec![0u8; 1024 * 1024 - 1];
    let over = put(vec![entry("k", b"x"), entry("kk", &big)])
        .await
        .unwrap_err();
    assert_eq!(code(over).as_deref(), Some("InvalidArgumentException"));
    let fits = put(vec![entry("k", &big)]).await.unwrap();
    assert_eq!(fits.failed_record_count(), Some(0));
    let five = vec![entry("k", &vec![0u8; 1024 * 1024 - 1]); 5];
    put(five.clone()).await.unwrap();
    let six = [five, vec![entry("k", b"x")]].concat();
    assert_eq!(
        code(put(six).await.unwrap_err()).as_deref(),
        Some("InvalidArgumentException")
    );
    let missing = client
        .put_records()
        .stream_name("nope")
        .records(entry("k", b"x"))
        .send();
    assert_eq!(
        code(missing.await.unwrap_err()).as_deref(),
        Some("ResourceNotFoundException")
    );
    assert_eq!(service.stats().entries_put, 6);
}
