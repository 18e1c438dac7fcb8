use super::*;
use crate::config::Namespaces;

fn policy(toml: &str) -> Policy {
    let mut c = Config::default();
    c.apply_toml(toml, "test").unwrap();
    Policy::from_config(&c).unwrap()
}

fn user(id: &str, channels: Option<&[&str]>, publish: Option<&[&str]>) -> Identity {
    Identity {
        user_id: id.into(),
        expires_at: None,
        channels: channels.map(|c| c.iter().map(|s| s.to_string()).collect()),
        publish: publish.map(|c| c.iter().map(|s| s.to_string()).collect()),
    }
}

#[test]
fn patterns_are_exact_or_trailing_star() {
    assert!(pattern_matches("news", "news"));
    assert!(!pattern_matches("news", "news2"));
    assert!(pattern_matches("game:*", "game:42"));
    assert!(!pattern_matches("game:*", "gamex"));
}

#[test]
fn personal_channels_belong_to_their_user_only() {
    let p = policy("");
    assert!(p.can_subscribe(Some(&user("42", None, None)), "user:42"));
    assert!(!p.can_subscribe(Some(&user("7", None, None)), "user:42"));
    assert!(!p.can_subscribe(None, "user:42"));
    assert!(!p.can_publish(Some(&user("42", None, None)), "user:42"));
}

#[test]
fn namespace_access_levels() {
    let p = policy("[namespaces.private]\nsubscribe = \"authenticated\"\n[namespaces.vip]\nsubscribe = \"token\"\npublish = false\n");
    assert!(p.can_subscribe(None, "public"));
    assert!(!p.can_subscribe(None, "private:a"));
    assert!(p.can_subscribe(Some(&user("u", None, None)), "private:a"));
    assert!(!p.can_subscribe(Some(&user("u", None, None)), "vip:x"));
    assert!(p.can_subscribe(Some(&user("u", Some(&["vip:*"]), None)), "vip:x"));
    assert!(
        !p.can_publish(
            Some(&user("u", Some(&["vip:*"]), Some(&["vip:*"]))),
            "vip:x"
        ),
        "publish = false"
    );
}

#[test]
fn publish_claims_restrict_publishing() {
    let p = policy("[namespaces.room]\nsubscribe = \"authenticated\"\n");
    let u = user("u", None, Some(&["room:1"]));
    assert!(p.can_publish(Some(&u), "room:1"));
    assert!(!p.can_publish(Some(&u), "room:2"));
    assert!(!p.can_publish(None, "room:1"));
}

#[test]
fn origins_are_checked_only_when_configured_and_sent() {
    let p = policy("allowed_origins = [\"https://app.example\"]\n");
    assert!(p.origin_allowed(None));
    assert!(p.origin_allowed(Some("https://app.example")));
    assert!(!p.origin_allowed(Some("https://evil.example")));
    assert!(policy("").origin_allowed(Some("https://any.example")));
}

#[test]
fn anonymous_defaults_to_allowed_only_without_a_key() {
    assert!(policy("").anonymous);
    assert!(!policy("jwt_secret = \"0123456789abcdef\"\n").anonymous);
    assert!(policy("jwt_secret = \"0123456789abcdef\"\nallow_anonymous = true\n").anonymous);
    let _ = Namespaces::default();
}

#[test]
fn hs256_tokens_verify_and_expire() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let v = Verifier::hs256(b"0123456789abcdef");
    let claims = serde_json::json!({"sub":"alice","exp":1000,"channels":["a"]});
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(b"0123456789abcdef"),
    )
    .unwrap();
    let id = v.verify(&token, 999).unwrap();
    assert_eq!(id.user_id, "alice");
    assert_eq!(id.channels, Some(vec!["a".to_string()]));
    assert_eq!(v.verify(&token, 1000), Err(AuthError::Expired));
    let forged = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(b"another-secret-16"),
    )
    .unwrap();
    assert!(matches!(v.verify(&forged, 999), Err(AuthError::Invalid(_))));
}
