// mdevsim-vfio-probe: exercises libmdevsim-vfio.so the way a VMM would, without a VMM, so the
// tests can check the shim's own contract: ioctls dispatched by descriptor kind, dup/F_DUPFD,
// descriptor reuse after close, concurrent access from several threads, reopening a device.
//   LD_PRELOAD=libmdevsim-vfio.so MDEVSIM_VFIO_MOUNT=MOUNT mdevsim-vfio-probe MOUNT UUID [v2]
// With v2 (a device whose type speaks v1 and v2 with every feature), the migration v2 calls
// instead of the v1 region: VFIO_DEVICE_FEATURE's header checks, MIG_DEVICE_STATE and its
// data_fd, PRECOPY_INFO, MIG_DATA_SIZE, DMA logging, each with its exact errno.
// Prints one line per check; exits 0 when all passed, 1 at the first failure.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../CMdevsimVFIO/vfio_v2_compat.h"

#define REGION(index) ((off_t)(index) << 40)

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL %s (errno %d: %s)\n", what, errno, strerror(errno));
        exit(1);
    }
    printf("ok %s\n", what);
}

static int device_fd;

static void *hammer(void *arg) {
    (void)arg;
    for (int i = 0; i < 500; i++) {
        uint32_t state = 0;
        if (pread(device_fd, &state, 4, REGION(9)) != 4 || state != VFIO_DEVICE_STATE_V1_RUNNING) return (void *)1;
    }
    return NULL;
}

/// One VFIO_DEVICE_FEATURE call with `size` bytes of data in and out of `data`.
static int feature(int fd, uint32_t flags, void *data, size_t size) {
    union {
        struct vfio_device_feature f;
        uint8_t bytes[sizeof(struct vfio_device_feature) + 64];
    } buf;
    memset(&buf, 0, sizeof buf);
    buf.f.argsz = (uint32_t)(sizeof buf.f + size);
    buf.f.flags = flags;
    if (size) memcpy(buf.f.data, data, size);
    int rc = ioctl(fd, VFIO_DEVICE_FEATURE, &buf);
    if (size) memcpy(data, buf.f.data, size);
    return rc;
}

static int set_state(int fd, uint32_t state) {
    struct vfio_device_feature_mig_state mig = {.device_state = state};
    int rc = feature(fd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &mig, sizeof mig);
    return rc == 0 ? mig.data_fd : -2;
}

static void v2_checks(int fd) {
    struct vfio_device_info dinfo = {.argsz = sizeof dinfo};
    check(ioctl(fd, VFIO_DEVICE_GET_INFO, &dinfo) == 0 && dinfo.num_regions == VFIO_PCI_NUM_REGIONS, "v2: no region 9");
    struct vfio_region_info rinfo = {.argsz = sizeof rinfo, .index = 9};
    check(ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &rinfo) == -1 && errno == EINVAL, "v2: region 9 is EINVAL");

    // The header checks of the kernel's vfio_ioctl_device_feature and vfio_check_feature.
    struct vfio_device_feature tiny = {.argsz = 4, .flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION};
    check(ioctl(fd, VFIO_DEVICE_FEATURE, &tiny) == -1 && errno == EINVAL, "v2: argsz below the header is EINVAL");
    struct vfio_device_feature_migration mig = {0};
    check(feature(fd, VFIO_DEVICE_FEATURE_GET | 63, &mig, sizeof mig) == -1 && errno == ENOTTY, "v2: unknown feature is ENOTTY");
    check(feature(fd, (1u << 19) | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof mig) == -1 &&
          errno == EINVAL, "v2: unknown flag is EINVAL");
    check(feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &mig, sizeof mig) == -1 &&
          errno == EINVAL, "v2: GET with SET without PROBE is EINVAL");
    check(feature(fd, VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof mig) == -1 && errno == EINVAL, "v2: neither GET, SET nor PROBE is EINVAL");
    check(feature(fd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof mig) == -1 && errno == EINVAL,
          "v2: SET of MIGRATION (GET only) is EINVAL");
    check(feature(fd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0) == 0,
          "v2: PROBE GET of MIGRATION needs no data");
    check(feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0) == -1 && errno == EINVAL,
          "v2: GET of MIGRATION without room for the data is EINVAL");
    check(feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof mig) == 0 &&
          mig.flags == (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY), "v2: MIGRATION GET: all features");

    struct vfio_device_feature_mig_state st = {.device_state = 99, .data_fd = 0};
    check(feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st, sizeof st) == 0 &&
          st.device_state == VFIO_DEVICE_STATE_RUNNING && st.data_fd == -1, "v2: GET state: RUNNING, data_fd -1");
    st = (struct vfio_device_feature_mig_state){.device_state = 99, .data_fd = 0};
    check(feature(fd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st, sizeof st) == -1 && errno == EINVAL &&
          st.data_fd == -1, "v2: SET of no state is EINVAL, data_fd -1");
    check(set_state(fd, VFIO_DEVICE_STATE_RUNNING_P2P) == -1, "v2: SET RUNNING_P2P starts no session: data_fd -1");

    int data = set_state(fd, VFIO_DEVICE_STATE_PRE_COPY_P2P);
    check(data >= 0, "v2: SET PRE_COPY_P2P returns a data_fd");
    struct vfio_precopy_info pi = {.argsz = sizeof pi};
    check(ioctl(data, VFIO_MIG_GET_PRECOPY_INFO, &pi) == 0 && pi.initial_bytes > 0, "v2: PRECOPY_INFO on the data_fd");
    struct vfio_precopy_info short_pi = {.argsz = 8};
    check(ioctl(data, VFIO_MIG_GET_PRECOPY_INFO, &short_pi) == -1 && errno == EINVAL, "v2: PRECOPY_INFO with a short argsz is EINVAL");
    check(ioctl(data, VFIO_DEVICE_GET_INFO, &dinfo) == -1 && errno == ENOTTY, "v2: a device ioctl on the data_fd is ENOTTY");
    check(ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &pi) == -1 && errno == ENOTTY, "v2: PRECOPY_INFO on the device fd is ENOTTY");
    struct vfio_device_feature_mig_data_size ds = {0};
    check(feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &ds, sizeof ds) == 0 && ds.stop_copy_length > 0,
          "v2: MIG_DATA_SIZE GET");
    static uint8_t buffer[1 << 20];
    check(read(data, buffer, sizeof buffer) > 0, "v2: read the data_fd in PRE_COPY_P2P");
    int copy = dup(data);
    check(copy >= 0 && close(data) == 0, "v2: dup the data_fd, close the original");
    check(ioctl(copy, VFIO_MIG_GET_PRECOPY_INFO, &pi) == 0, "v2: PRECOPY_INFO through the dup");
    check(set_state(fd, VFIO_DEVICE_STATE_STOP_COPY) == -1, "v2: PRE_COPY_P2P -> STOP_COPY keeps the session: data_fd -1");
    ssize_t n;
    while ((n = read(copy, buffer, sizeof buffer)) > 0) {}
    check(n == 0, "v2: STOP_COPY reads end with 0");
    check(ioctl(copy, VFIO_MIG_GET_PRECOPY_INFO, &pi) == -1 && errno == EINVAL, "v2: PRECOPY_INFO outside PRE_COPY is EINVAL");
    check(set_state(fd, VFIO_DEVICE_STATE_STOP) == -1, "v2: SET STOP");
    close(copy);
    check(ioctl(copy, VFIO_MIG_GET_PRECOPY_INFO, &pi) == -1 && errno == EBADF, "v2: a closed data_fd is forgotten");

    // Device DMA logging.
    struct vfio_device_feature_dma_logging_range range = {.iova = 0, .length = 1ULL << 32};
    struct vfio_device_feature_dma_logging_control control = {.page_size = 4096, .num_ranges = 1, .ranges = (uintptr_t)&range};
    uint64_t bitmap[4] = {0};
    struct vfio_device_feature_dma_logging_report report = {.iova = 0, .length = 1 << 20, .page_size = 4096, .bitmap = (uintptr_t)bitmap};
    check(feature(fd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, NULL, 0) == 0,
          "v2: PROBE of DMA_LOGGING_START");
    check(feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, &report, sizeof report) == -1 && errno == EINVAL,
          "v2: REPORT before START is EINVAL");
    check(feature(fd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &control, sizeof control) == 0 &&
          control.page_size == 4096, "v2: DMA_LOGGING_START");
    // EINVAL as the kernel's drivers (mlx5vf_start_page_tracker: "if (mvdev->log_active) return -EINVAL").
    check(feature(fd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &control, sizeof control) == -1 && errno == EINVAL,
          "v2: a second START is EINVAL");
    check(feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, &report, sizeof report) == 0 &&
          bitmap[0] == 0, "v2: REPORT of a device without DMA: nothing dirty");
    report.page_size = 3000;
    check(feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, &report, sizeof report) == -1 && errno == EINVAL,
          "v2: REPORT with a page size not a power of two is EINVAL");
    check(feature(fd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0) == 0, "v2: DMA_LOGGING_STOP");
    check(ioctl(fd, VFIO_DEVICE_RESET) == 0, "v2: reset");
    check(set_state(fd, VFIO_DEVICE_STATE_RUNNING) == -1, "v2: back to RUNNING after reset");
}

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "v2") == 0)) {
        fprintf(stderr, "usage: %s MOUNT UUID [v2]\n", argv[0]);
        return 2;
    }
    char path[4096], link[4096];
    snprintf(path, sizeof path, "%s/devices/%s/iommu_group", argv[1], argv[2]);
    ssize_t n = readlink(path, link, sizeof link - 1);
    check(n > 0, "iommu_group link");
    link[n] = '\0';
    const char *slash = strrchr(link, '/');
    int group = atoi(slash ? slash + 1 : link);

    int container = open("/dev/vfio/vfio", O_RDWR);
    check(container >= 0, "open container");
    check(ioctl(container, VFIO_GET_API_VERSION) == VFIO_API_VERSION, "API version");
    check(ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) == 1, "type1v2 extension");
    check(ioctl(container, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU) == 0, "no no-iommu extension");

    snprintf(path, sizeof path, "/dev/vfio/%d", group);
    int groupfd = open(path, O_RDWR);
    check(groupfd >= 0, "open group");
    struct vfio_group_status status = {.argsz = sizeof status};
    check(ioctl(groupfd, VFIO_GROUP_GET_STATUS, &status) == 0 && status.flags == VFIO_GROUP_FLAGS_VIABLE, "group viable, no container");
    check(ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) == -1 && errno == EINVAL, "SET_IOMMU needs a group first");
    check(ioctl(groupfd, VFIO_GROUP_SET_CONTAINER, &container) == 0, "set container");
    check(ioctl(groupfd, VFIO_GROUP_GET_STATUS, &status) == 0 && (status.flags & VFIO_GROUP_FLAGS_CONTAINER_SET), "container set");
    check(ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) == 0, "set IOMMU");

    // The capability chain: a short argsz learns the size, the full one gets the migration cap.
    struct vfio_iommu_type1_info small = {.argsz = sizeof small};
    check(ioctl(container, VFIO_IOMMU_GET_INFO, &small) == 0 && small.argsz > sizeof small && small.cap_offset == 0, "IOMMU info asks for more room");
    struct vfio_iommu_type1_info *info = calloc(1, small.argsz);
    check(info != NULL, "alloc");
    info->argsz = small.argsz;
    check(ioctl(container, VFIO_IOMMU_GET_INFO, info) == 0 && info->cap_offset != 0, "IOMMU info with capabilities");
    int migration_cap = 0;
    for (uint32_t at = info->cap_offset; at != 0;) {
        struct vfio_info_cap_header *h = (void *)((char *)info + at);
        if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION)
            migration_cap = ((struct vfio_iommu_type1_info_cap_migration *)h)->pgsize_bitmap == 4096;
        at = h->next;
    }
    check(migration_cap, "migration capability with 4KiB dirty pages");

    check(ioctl(groupfd, VFIO_GROUP_GET_DEVICE_FD, "not-this-device") == -1 && errno == ENODEV, "another name is ENODEV");
    device_fd = ioctl(groupfd, VFIO_GROUP_GET_DEVICE_FD, argv[2]);
    check(device_fd >= 0, "device fd");
    // Same request number as VFIO_IOMMU_GET_INFO, on a device: not answered as the container's.
    check(ioctl(device_fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) == -1 && errno == ENOTTY, "dispatch by descriptor kind");
    if (argc == 4) {
        v2_checks(device_fd);
        close(device_fd);
        printf("all checks passed\n");
        return 0;
    }
    struct vfio_device_info dinfo = {.argsz = sizeof dinfo};
    check(ioctl(device_fd, VFIO_DEVICE_GET_INFO, &dinfo) == 0 && dinfo.num_regions == 10 && (dinfo.flags & VFIO_DEVICE_FLAGS_PCI), "device info");
    uint16_t ids[2];
    check(pread(device_fd, ids, 4, REGION(VFIO_PCI_CONFIG_REGION_INDEX)) == 4 && ids[0] != 0 && ids[0] != 0xffff, "config space ids");

    // dup and F_DUPFD stand for the same device; the original number can go.
    int copy = dup(device_fd);
    int high = fcntl(device_fd, F_DUPFD_CLOEXEC, 200);
    check(copy >= 0 && high >= 200, "dup and F_DUPFD_CLOEXEC");
    check(close(device_fd) == 0, "close the original");
    uint32_t state = 0;
    check(pread(copy, &state, 4, REGION(9)) == 4 && state == VFIO_DEVICE_STATE_V1_RUNNING, "device_state through the dup");
    check(pread(high, &state, 4, REGION(9)) == 4 && state == VFIO_DEVICE_STATE_V1_RUNNING, "device_state through F_DUPFD");
    // A number freed by close and reused by an ordinary open is ordinary again.
    int reused = open("/dev/null", O_RDONLY);
    check(reused == device_fd, "the closed number is reused");
    check(pread(reused, &state, 4, REGION(9)) == 0, "the reused number reads /dev/null, not the device");
    close(reused);

    // Several threads at once, as QEMU's migration thread and main loop.
    device_fd = copy;
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) pthread_create(&threads[i], NULL, hammer, NULL);
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(threads[i], &r);
        bad += r != NULL;
    }
    check(bad == 0, "2000 concurrent header reads from 4 threads");

    // All numbers closed: the device (and its region) is released and can be opened again.
    close(copy);
    close(high);
    int again = ioctl(groupfd, VFIO_GROUP_GET_DEVICE_FD, argv[2]);
    check(again >= 0, "device fd again after closing every copy");
    close(again);
    check(ioctl(groupfd, VFIO_GROUP_UNSET_CONTAINER) == 0, "unset container");
    close(groupfd);
    close(container);
    free(info);
    printf("all checks passed\n");
    return 0;
}
