//! The WAL write gathering of `platform::wal_writes` as a macro, so that both SQLite builds
//! OpenOrder links get it: sqlx's (`libsqlite3-sys`, in the services) and libsql's
//! (`libsql-ffi`, in `openorder-broker`). The two cannot share a binary (both define
//! `sqlite3_*`), so each invokes [`vfs!`] with its own bindings crate. What the VFS does and
//! why: `platform::wal_writes`.

/// Defines module `wal_writes_vfs`, with `install()`, on the SQLite bindings crate `$ffi`
/// (`libsqlite3_sys` or `libsql_ffi`, which must be a dependency of the invoking crate).
#[macro_export]
macro_rules! vfs {
    ($ffi:ident) => {
        // A VFS is C callbacks over raw file structs that SQLite allocates: unsafe
        // throughout.
        #[allow(unsafe_code)]
        pub mod wal_writes_vfs {
            use $ffi as ffi;

            use std::ffi::{c_int, c_void};
            use std::sync::atomic::{AtomicPtr, Ordering};
            use std::sync::OnceLock;

            /// Most bytes gathered before they are written anyway (a large transaction's frames).
            /// SQLite's unix VFS writes at most 128 KiB − 1 bytes in one call (it masks the
            /// length), so this plus one page (64 KiB at most) must stay under that.
            const GATHER_LIMIT: usize = 64 << 10;

            /// The size of a WAL frame header.
            const FRAME_HEADER: usize = 24;

            /// The name the VFS is registered under (as the default).
            const NAME: &std::ffi::CStr = c"openorder-wal-writes";

            /// The default VFS this one wraps.
            static INNER: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(std::ptr::null_mut());

            /// Registers the VFS as SQLite's default, once per process; call before opening a
            /// connection. Connections opened before keep the VFS they had.
            pub fn install() -> Result<(), String> {
                static INSTALLED: OnceLock<c_int> = OnceLock::new();
                let rc = *INSTALLED.get_or_init(|| unsafe {
                    let inner = ffi::sqlite3_vfs_find(std::ptr::null());
                    if inner.is_null() {
                        return ffi::SQLITE_ERROR;
                    }
                    INNER.store(inner, Ordering::Release);
                    let mut vfs = *inner;
                    vfs.zName = NAME.as_ptr();
                    vfs.pNext = std::ptr::null_mut();
                    vfs.szOsFile = HEADER as c_int + (*inner).szOsFile;
                    vfs.xOpen = Some(open);
                    ffi::sqlite3_vfs_register(Box::leak(Box::new(vfs)), 1)
                });
                match rc {
                    ffi::SQLITE_OK => Ok(()),
                    rc => Err(format!("registering the SQLite VFS failed (code {rc})")),
                }
            }

            /// A `-wal` file as SQLite sees it: the base struct, then the default VFS's own file
            /// (at [`HEADER`] bytes, in the same allocation).
            #[repr(C)]
            struct WalFile {
                base: ffi::sqlite3_file,
                inner: *mut ffi::sqlite3_file,
                gathered: *mut Gathered,
            }

            /// Where the default VFS's file starts in ours (8-byte aligned, as SQLite aligns ours).
            const HEADER: usize = std::mem::size_of::<WalFile>().next_multiple_of(8);

            /// Bytes written by SQLite and not yet by the kernel: `bytes` belong at `offset`.
            #[derive(Default)]
            struct Gathered {
                offset: i64,
                bytes: Vec<u8>,
                /// The commit frame's header was written: its page goes straight through.
                commit_page_next: bool,
            }

            unsafe extern "C" fn open(
                _vfs: *mut ffi::sqlite3_vfs,
                name: ffi::sqlite3_filename,
                file: *mut ffi::sqlite3_file,
                flags: c_int,
                out_flags: *mut c_int,
            ) -> c_int {
                let inner_vfs = INNER.load(Ordering::Acquire);
                let inner_open = (*inner_vfs).xOpen.expect("a VFS opens files");
                if flags & ffi::SQLITE_OPEN_WAL == 0 {
                    // Every other file is the default VFS's, laid out at the start of ours.
                    return inner_open(inner_vfs, name, file, flags, out_flags);
                }
                let wal = file.cast::<WalFile>();
                (*wal).base.pMethods = std::ptr::null();
                let inner = file.cast::<u8>().add(HEADER).cast::<ffi::sqlite3_file>();
                (*inner).pMethods = std::ptr::null();
                let rc = inner_open(inner_vfs, name, inner, flags, out_flags);
                if rc != ffi::SQLITE_OK {
                    if let Some(close) = (*inner).pMethods.as_ref().and_then(|m| m.xClose) {
                        close(inner);
                    }
                    return rc;
                }
                (*wal).inner = inner;
                (*wal).gathered = Box::into_raw(Box::default());
                (*wal).base.pMethods = &METHODS;
                ffi::SQLITE_OK
            }

            static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
                iVersion: 3,
                xClose: Some(close),
                xRead: Some(read),
                xWrite: Some(write),
                xTruncate: Some(truncate),
                xSync: Some(sync),
                xFileSize: Some(file_size),
                xLock: Some(lock),
                xUnlock: Some(unlock),
                xCheckReservedLock: Some(check_reserved_lock),
                xFileControl: Some(file_control),
                xSectorSize: Some(sector_size),
                xDeviceCharacteristics: Some(device_characteristics),
                xShmMap: Some(shm_map),
                xShmLock: Some(shm_lock),
                xShmBarrier: Some(shm_barrier),
                xShmUnmap: Some(shm_unmap),
                xFetch: Some(fetch),
                xUnfetch: Some(unfetch),
            };

            /// The default VFS's file and its methods.
            unsafe fn inner(
                file: *mut ffi::sqlite3_file,
            ) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
                let inner = (*file.cast::<WalFile>()).inner;
                (inner, &*(*inner).pMethods)
            }

            /// Writes what was gathered.
            unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
                let gathered = &mut *(*file.cast::<WalFile>()).gathered;
                if gathered.bytes.is_empty() {
                    return ffi::SQLITE_OK;
                }
                let (inner, methods) = inner(file);
                let rc = methods.xWrite.expect("files are written")(
                    inner,
                    gathered.bytes.as_ptr().cast(),
                    gathered.bytes.len() as c_int,
                    gathered.offset,
                );
                gathered.bytes.clear();
                rc
            }

            unsafe extern "C" fn write(
                file: *mut ffi::sqlite3_file,
                data: *const c_void,
                amount: c_int,
                offset: i64,
            ) -> c_int {
                let gathered = &mut *(*file.cast::<WalFile>()).gathered;
                let bytes = std::slice::from_raw_parts(data.cast::<u8>(), amount as usize);
                let continues = gathered.offset + gathered.bytes.len() as i64 == offset;
                let fits = gathered.bytes.len() + bytes.len() <= GATHER_LIMIT;
                let joins = gathered.bytes.is_empty() || (continues && fits);
                if !joins {
                    let rc = flush(file);
                    if rc != ffi::SQLITE_OK {
                        return rc;
                    }
                }
                if std::mem::take(&mut gathered.commit_page_next) {
                    let (inner, methods) = inner(file);
                    return methods.xWrite.expect("files are written")(inner, data, amount, offset);
                }
                if gathered.bytes.is_empty() {
                    gathered.offset = offset;
                }
                gathered.bytes.extend_from_slice(bytes);
                // A frame header's bytes 4..8 are the database size after the commit, in a commit
                // frame only (0 otherwise).
                if bytes.len() == FRAME_HEADER && bytes[4..8] != [0; 4] {
                    gathered.commit_page_next = true;
                    return flush(file);
                }
                ffi::SQLITE_OK
            }

            unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
                let flushed = flush(file);
                let (inner, methods) = inner(file);
                let closed = methods.xClose.expect("files are closed")(inner);
                drop(Box::from_raw((*file.cast::<WalFile>()).gathered));
                if flushed != ffi::SQLITE_OK {
                    flushed
                } else {
                    closed
                }
            }

            /// Writes what was gathered, then makes `call` on the default VFS's file and methods
            /// (None: the method is missing, an I/O error).
            unsafe fn forward(
                file: *mut ffi::sqlite3_file,
                call: impl FnOnce(
                    *mut ffi::sqlite3_file,
                    &ffi::sqlite3_io_methods,
                ) -> Option<c_int>,
            ) -> c_int {
                match flush(file) {
                    ffi::SQLITE_OK => {
                        let (inner, methods) = inner(file);
                        call(inner, methods).unwrap_or(ffi::SQLITE_IOERR)
                    }
                    rc => rc,
                }
            }

            unsafe extern "C" fn read(
                file: *mut ffi::sqlite3_file,
                data: *mut c_void,
                amount: c_int,
                offset: i64,
            ) -> c_int {
                forward(file, |inner, methods| Some(methods.xRead?(inner, data, amount, offset)))
            }

            unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
                forward(file, |inner, methods| Some(methods.xTruncate?(inner, size)))
            }

            unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
                forward(file, |inner, methods| Some(methods.xSync?(inner, flags)))
            }

            unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
                forward(file, |inner, methods| Some(methods.xFileSize?(inner, size)))
            }

            unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
                forward(file, |inner, methods| Some(methods.xLock?(inner, level)))
            }

            unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
                forward(file, |inner, methods| Some(methods.xUnlock?(inner, level)))
            }

            unsafe extern "C" fn check_reserved_lock(
                file: *mut ffi::sqlite3_file,
                out: *mut c_int,
            ) -> c_int {
                forward(file, |inner, methods| Some(methods.xCheckReservedLock?(inner, out)))
            }

            unsafe extern "C" fn file_control(
                file: *mut ffi::sqlite3_file,
                op: c_int,
                arg: *mut c_void,
            ) -> c_int {
                forward(file, |inner, methods| Some(methods.xFileControl?(inner, op, arg)))
            }

            unsafe extern "C" fn shm_map(
                file: *mut ffi::sqlite3_file,
                region: c_int,
                size: c_int,
                extend: c_int,
                out: *mut *mut c_void,
            ) -> c_int {
                forward(file, |inner, methods| {
                    Some(methods.xShmMap?(inner, region, size, extend, out))
                })
            }

            unsafe extern "C" fn shm_lock(
                file: *mut ffi::sqlite3_file,
                offset: c_int,
                n: c_int,
                flags: c_int,
            ) -> c_int {
                forward(file, |inner, methods| Some(methods.xShmLock?(inner, offset, n, flags)))
            }

            unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
                forward(file, |inner, methods| Some(methods.xShmUnmap?(inner, delete)))
            }

            unsafe extern "C" fn fetch(
                file: *mut ffi::sqlite3_file,
                offset: i64,
                amount: c_int,
                out: *mut *mut c_void,
            ) -> c_int {
                forward(file, |inner, methods| Some(methods.xFetch?(inner, offset, amount, out)))
            }

            unsafe extern "C" fn unfetch(
                file: *mut ffi::sqlite3_file,
                offset: i64,
                page: *mut c_void,
            ) -> c_int {
                let (inner, methods) = inner(file);
                match methods.xUnfetch {
                    Some(unfetch) => unfetch(inner, offset, page),
                    None => ffi::SQLITE_OK,
                }
            }

            unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
                let (inner, methods) = inner(file);
                if let Some(barrier) = methods.xShmBarrier {
                    barrier(inner)
                }
            }

            unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
                let (inner, methods) = inner(file);
                methods.xSectorSize.map_or(4096, |size| size(inner))
            }

            unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
                let (inner, methods) = inner(file);
                methods
                    .xDeviceCharacteristics
                    .map_or(0, |characteristics| characteristics(inner))
            }
        }
    };
}
