//! Segments on several threads: the same bytes as one thread.

use crate::error::Error;

/// Below this many payload bytes per thread, a thread costs more than it
/// saves (spawning a scoped thread is tens of microseconds).
pub(crate) const MIN_BYTES_PER_THREAD: usize = 128 * 1024;

/// How many threads to use for `bytes` of work when `threads` are allowed:
/// never more than one per [`MIN_BYTES_PER_THREAD`], at least one.
pub(crate) fn threads_for(threads: usize, bytes: usize) -> usize {
    threads.min(bytes.div_ceil(MIN_BYTES_PER_THREAD)).max(1)
}

/// Runs `work(index, item)` for every item, each on a scoped thread of its
/// own (with `std` and more than one item; otherwise in order on this
/// thread), and returns the first error. A panicking worker is an error, not
/// a panic.
pub(crate) fn run<I, F>(items: I, work: F) -> Result<(), Error>
where
    I: Iterator,
    I::Item: Send,
    F: Fn(usize, I::Item) -> Result<(), Error> + Sync,
{
    #[cfg(feature = "std")]
    {
        let items: alloc::vec::Vec<I::Item> = items.collect();
        if items.len() <= 1 {
            return items.into_iter().enumerate().try_for_each(|(t, item)| work(t, item));
        }
        let work = &work;
        std::thread::scope(|scope| {
            let handles: alloc::vec::Vec<_> = items
                .into_iter()
                .enumerate()
                .map(|(t, item)| scope.spawn(move || work(t, item)))
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join().unwrap_or(Err(Error::InvalidArgument {
                    what: "a worker thread panicked",
                }))
            })
        })
    }
    #[cfg(not(feature = "std"))]
    {
        items.enumerate().try_for_each(|(t, item)| work(t, item))
    }
}
