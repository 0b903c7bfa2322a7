// zstd_filter.h: the HDF5 zstd filter, registered id 32015 (the id hdf5plugin.Zstd uses), in our own code so
// neither lgtrain nor lgdata needs the plugin's shared library. cd_values[0] = compression level;
// each chunk is one zstd frame made by one-shot ZSTD_compress (so it records its content size).
#pragma once
#ifdef LG_HAVE_HDF5
#define LG_H5Z_ZSTD 32015
void lg_h5z_zstd_register(void);  // called by lg_h5_init; dies if HDF5 refuses
// Why the last decode on this thread failed ("" when none); cleared when read by lg_h5_reason.
const char *lg_h5z_zstd_last_error(void);
#endif
