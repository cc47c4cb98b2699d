use super::*;

#[test]
fn labels_name_every_method_and_status_as_it_is() {
    for method in ["GET", "POST", "DELETE", "BREW"] {
        assert_eq!(&*method_label(method), method);
    }
    for status in [200, 404, 409, 418, 599] {
        assert_eq!(&*status_label(status), status.to_string());
    }
}
