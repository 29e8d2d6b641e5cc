//! Operation sequences for the fuzz targets and their corpus replay
//! (feature `arbitrary`; not a stable API).
