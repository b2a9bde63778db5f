//! TFTP wire format. (Skeleton: filled by the TFTP issue.)
