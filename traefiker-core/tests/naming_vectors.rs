//! `clean_userid` reproduces every vector computed from the Python algorithm (SPEC §2).

use traefiker_core::names::{clean_userid, Naming};
use traefiker_core::UserId;

#[test]
fn every_python_vector_matches() {
    let text = include_str!("fixtures/clean_userid.json");
    let doc: serde_json::Value = serde_json::from_str(text).expect("fixture is JSON");
    let vectors = doc["vectors"].as_array().expect("vectors array");
    assert_eq!(vectors.len(), 34);
    let mut checked = 0;
    for v in vectors {
        let user = v["user"].as_str().expect("user");
        let template = v["template"].as_str().expect("template");
        assert_eq!(
            clean_userid(user, template),
            v["cleaned"].as_str().expect("cleaned"),
            "clean_userid({user:?}, {template:?})"
        );
        let naming = Naming::new(template, "prespawn-{}").expect("valid template");
        let id = UserId::new(user).expect("valid user id");
        assert_eq!(
            naming.user_container(&id).as_str(),
            v["container"].as_str().expect("container"),
            "container name of {user:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 34);
}
