/// Tar + zstd snapshots of a session's persisted paths (libarchive, through `CLibArchive`):
/// create, verify, restore and the path policy for restores.
///
/// The module exists so the dependency graph of DESIGN.md holds from the first commit; its
/// implementation arrives with the snapshots issue (sleep, wake and restore), which owns it.
public enum Snapshot {}
