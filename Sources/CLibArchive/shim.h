#ifndef FLARE_CLIBARCHIVE_SHIM_H
#define FLARE_CLIBARCHIVE_SHIM_H

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

// File-type constants are macros built from octal literals Swift does not import.
static inline unsigned int flare_ae_ifreg(void) { return AE_IFREG; }
static inline unsigned int flare_ae_ifdir(void) { return AE_IFDIR; }
static inline unsigned int flare_ae_iflnk(void) { return AE_IFLNK; }
#endif
