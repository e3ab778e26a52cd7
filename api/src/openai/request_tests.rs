use super::*;
use serde_json::json;
use sn1_contracts::job::SamplingMode;

fn parse_value(body: Value) -> Result<CompletionRequest, OpenAiError> {
    parse(
        body.to_string().as_bytes(),
        &RequestLimits::default(),
        &Models::default(),
        Utc::now(),
    )
}

fn param(body: Value) -> (u16, Option<String>) {
    let e = parse_value(body).unwrap_err();
    (e.status().as_u16(), e.body().param.clone())
}

#[test]
fn a_minimal_request_takes_the_models_defaults() {
    let at = Utc::now();
    let body = json!({"model": "sn1", "messages": [{"role": "user", "content": "hi"}]});
    let r = parse(
        body.to_string().as_bytes(),
        &RequestLimits::default(),
        &Models::default(),
        at,
    )
    .unwrap();
    assert_eq!(r.model, "sn1");
    assert!(!r.parsed.stream && !r.include_usage);
    let p = &r.parsed.params;
    assert_eq!(
        (p.k, p.strategy, p.sampling_mode),
        (10, Strategy::First, SamplingMode::Reliable)
    );
    assert_eq!(p.roles, ["user"]);
    assert_eq!(p.messages, ["hi"]);
    assert_eq!(p.sampling, Sampling::default());
    assert_eq!(r.parsed.deadline - at, chrono::Duration::seconds(10));
}

#[test]
fn everything_openai_and_sn1_sends_is_read() {
    let r = parse_value(json!({
        "model": "sn1",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "ok", "name": "x"}
        ],
        "stream": true, "stream_options": {"include_usage": true},
        "temperature": 0.5, "top_p": 1, "max_tokens": 20, "max_completion_tokens": 30,
        "seed": 7, "stop": "\n", "n": 1, "user": "u", "frequency_penalty": 0,
        "sn1": {"k": 3, "exclude": [1, "5F"], "strategy": "longest",
                "sampling_mode": "top_incentive", "timeout": 2.5}
    }))
    .unwrap();
    assert!(r.parsed.stream && r.include_usage);
    let p = &r.parsed.params;
    assert_eq!(p.roles, ["system", "user", "assistant"]);
    assert_eq!(p.messages, ["be brief", "a\nb", "ok"]);
    assert_eq!((p.k, p.strategy), (3, Strategy::Longest));
    assert_eq!(p.sampling_mode, SamplingMode::TopIncentive);
    assert_eq!(p.exclude.len(), 2);
    assert_eq!(
        p.sampling,
        Sampling {
            temperature: Some(0.5),
            top_p: Some(1.0),
            max_tokens: Some(30),
            seed: Some(7),
            stop: vec!["\n".into()],
        }
    );
}

#[test]
fn errors_name_the_param() {
    let ok = || json!({"model": "sn1", "messages": [{"role": "user", "content": "hi"}]});
    let with = |key: &str, value: Value| {
        let mut body = ok();
        body[key] = value;
        body
    };
    let bad = |body: Value, want: &str| assert_eq!(param(body), (400, Some(want.to_string())));
    bad(json!([]), "body");
    bad(json!({"messages": []}), "model");
    bad(with("messages", json!([])), "messages");
    bad(
        with("messages", json!([{"role": "tool", "content": "x"}])),
        "messages[0].role",
    );
    bad(
        with(
            "messages",
            json!([{"role": "user", "content": [{"type": "image_url"}]}]),
        ),
        "messages[0].content",
    );
    bad(
        with("messages", json!([{"role": "user"}])),
        "messages[0].content",
    );
    bad(with("n", json!(2)), "n");
    bad(with("temperature", json!(2.5)), "temperature");
    bad(with("top_p", json!(-0.1)), "top_p");
    bad(with("max_tokens", json!(0)), "max_tokens");
    let mut both = with("max_completion_tokens", json!(5));
    both["max_tokens"] = json!(true);
    bad(both, "max_tokens");
    bad(with("seed", json!(-1)), "seed");
    bad(with("seed", json!(9_223_372_036_854_775_808_u64)), "seed");
    bad(with("max_tokens", json!(2_147_483_648_u64)), "max_tokens");
    bad(with("stop", json!(["a", "b", "c", "d", "e"])), "stop");
    bad(with("stream", json!("yes")), "stream");
    bad(
        with("stream_options", json!({"include_usage": 1})),
        "stream_options.include_usage",
    );
    bad(with("sn1", json!({"k": 0})), "sn1.k");
    bad(with("sn1", json!({"timeout": 0})), "sn1.timeout");
    bad(with("sn1", json!({"exclude": [-1]})), "sn1.exclude");
    bad(
        with("sn1", json!({"strategy": "consensus"})),
        "sn1.strategy",
    );
    let e = parse_value(with("sn1", json!({"timeout": 0}))).unwrap_err();
    assert!(e.body().message.contains("`sn1.timeout`"), "{:?}", e.body());
    assert_eq!(
        param(with("model", json!("gpt-4"))),
        (404, Some("model".into()))
    );
    assert_eq!(
        parse_value(with("model", json!("gpt-4")))
            .unwrap_err()
            .body()
            .code,
        Some("model_not_found")
    );
    assert!(parse_value(with("n", json!(1))).is_ok());
}
