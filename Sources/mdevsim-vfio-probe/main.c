// mdevsim-vfio-probe: exercises libmdevsim-vfio.so the way a VMM would, without a VMM, so the
// tests can check the shim's own contract: ioctls dispatched by descriptor kind, dup/F_DUPFD,
// descriptor reuse after close, concurrent access from several threads, reopening a device.
//   LD_PRELOAD=libmdevsim-vfio.so MDEVSIM_VFIO_MOUNT=MOUNT mdevsim-vfio-probe MOUNT UUID
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

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MOUNT UUID\n", argv[0]);
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
