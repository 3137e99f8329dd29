// Temporary (not committed): cost of a fresh private ring per call vs the cached one.
use std::time::Instant;
use uringq::core::{read_files, Check, Finished, Paths, ReadSink, Tuning};
struct S;
impl Check for S {
    type Error = ();
    fn check(&mut self) -> Result<(), ()> {
        Ok(())
    }
}
impl ReadSink for S {
    type Big = Vec<u8>;
    fn deliver(&mut self, _: &[Finished<'_>]) -> Result<(), ()> {
        Ok(())
    }
    fn alloc(&mut self, len: usize) -> Result<Vec<u8>, ()> {
        Ok(vec![0; len])
    }
    fn as_mut_ptr(b: &mut Vec<u8>) -> *mut u8 {
        b.as_mut_ptr()
    }
    fn finish(&mut self, _: usize, _: Option<Vec<u8>>, _: usize, _: &[u8]) -> Result<(), ()> {
        Ok(())
    }
}
fn main() {
    let mut p = Paths::default();
    p.push(b"/etc/passwd").unwrap();
    let n = 20000;
    let t = Instant::now();
    for _ in 0..n {
        read_files(libc::AT_FDCWD, &p, Tuning::default(), &mut S).unwrap();
    }
    println!(
        "cached ring, 1 file per call: {:.1} us/call",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..2000 {
        let mut b =
            io_uring::IoUring::<io_uring::squeue::Entry, io_uring::cqueue::Entry>::builder();
        b.setup_cqsize(512)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun();
        let r = b.build(256).unwrap();
        r.submitter().register_files_sparse(64).unwrap();
        drop(r);
    }
    println!(
        "fresh ring setup+register+drop: {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / 2000.0
    );
}
