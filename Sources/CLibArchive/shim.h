#ifndef FLARE_CLIBARCHIVE_SHIM_H
#define FLARE_CLIBARCHIVE_SHIM_H

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

// File-type constants are macros built from octal literals Swift does not import.
static inline unsigned int flare_ae_ifreg(void) { return AE_IFREG; }
static inline unsigned int flare_ae_ifdir(void) { return AE_IFDIR; }
static inline unsigned int flare_ae_iflnk(void) { return AE_IFLNK; }

// Extraction and disk-reading flags are macros of parenthesized literals.
static inline int flare_extract_flags(int owner) {
    int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS
        | ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SPARSE | ARCHIVE_EXTRACT_UNLINK;
    return owner ? flags | ARCHIVE_EXTRACT_OWNER : flags;
}
static inline int flare_readdisk_flags(void) {
    return ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS | ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL
        | ARCHIVE_READDISK_NO_FFLAGS;
}
#endif
