use super::*;

#[test]
fn the_derived_cap_keeps_descriptors_for_the_store_and_the_read_models() {
    assert_eq!(cap_for(Some(1024)), 1024 - RESERVED_FDS as usize);
    assert_eq!(cap_for(Some(100)), MIN_CAP);
    assert_eq!(cap_for(None), UNLIMITED_CAP);
    assert_eq!(cap_for(Some(u64::MAX)), UNLIMITED_CAP);
}

#[test]
fn running_out_of_descriptors_is_not_fatal() {
    assert!(is_exhaustion(&std::io::Error::from(
        rustix::io::Errno::MFILE
    )));
    assert!(!is_exhaustion(&std::io::Error::from(
        rustix::io::Errno::INVAL
    )));
}
