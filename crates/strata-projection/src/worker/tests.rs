use super::*;

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
fn nice() -> i32 {
    rustix::process::getpriority_process(None).expect("getpriority")
}

#[cfg(target_os = "linux")]
#[test]
fn a_background_worker_runs_behind_the_thread_that_starts_it_and_a_normal_one_beside_it() {
    let own = nice();
    let background = Worker::spawn(
        "test-background".to_owned(),
        Priority::Background,
        || Ok(()),
    )
    .expect("spawn");
    let normal =
        Worker::spawn("test-normal".to_owned(), Priority::Normal, || Ok(())).expect("spawn");
    let background_nice = background.call_blocking(|()| nice()).expect("call");
    let normal_nice = normal.call_blocking(|()| nice()).expect("call");
    assert_eq!(
        background_nice,
        (own + BACKGROUND_NICE).min(MAX_NICE),
        "the background worker's nice value"
    );
    assert_eq!(normal_nice, own, "the normal worker keeps the process's");
    assert_eq!(nice(), own, "the calling thread keeps its own");
}

#[cfg(target_os = "linux")]
#[test]
fn a_thread_already_at_the_lowest_priority_stays_there() {
    // A thread of its own, so that the test's thread keeps its priority.
    std::thread::spawn(|| {
        rustix::process::setpriority_process(None, MAX_NICE).expect("setpriority");
        let worker = Worker::spawn("test-lowest".to_owned(), Priority::Background, || Ok(()))
            .expect("spawn");
        assert_eq!(worker.call_blocking(|()| nice()).expect("call"), MAX_NICE);
    })
    .join()
    .expect("the thread ends");
}

#[test]
fn a_worker_runs_its_jobs_in_order_and_ends_when_closed() {
    let worker = Worker::spawn("test-order".to_owned(), Priority::Background, || {
        Ok(Vec::<u32>::new())
    })
    .expect("spawn");
    for i in 0..10 {
        worker
            .call_blocking(move |seen| seen.push(i))
            .expect("call");
    }
    assert_eq!(
        worker.call_blocking(|seen| seen.clone()).expect("call"),
        (0..10).collect::<Vec<_>>()
    );
    let thread = worker.close().expect("the thread was running");
    thread.join().expect("the thread ends");
    assert!(matches!(
        worker.call_blocking(|_| ()),
        Err(ProjectionError::ShutDown)
    ));
}
