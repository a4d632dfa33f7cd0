// SPDX-License-Identifier: GPL-2.0
/*
 * walktrace.c: trace the kernel's page-table walker for livewalk crosscheck.
 *
 * Loaded with bcc by livewalk/crosscheck/tracer.py, compiled once per run.
 *
 * Entry points (walk_page_range & co.) get a kprobe and a kretprobe. The
 * outermost traced call of a task starts a "walk": a WALK_START event carries
 * the raw arguments and the ops struct's first words (its callback pointers,
 * decoded in user space with the kernel's struct layout); WALK_END carries
 * the return value and the number of callback events the walk produced.
 * Nested entry points (walk_page_range -> walk_page_range_mm_unsafe) only bump
 * a depth counter.
 *
 * Each callback function found in a traced ops struct gets a kprobe (one
 * handler per ops slot, so the slot is known from the handler) and a shared
 * kretprobe. The kprobe saves the arguments, the raw u64 its pointer argument
 * points to, walk->action and walk->vma->vm_start per task; the kretprobe adds
 * the return value, walk->action after the call (and for install_pte the
 * value it wrote through its pte_t * argument) and emits one CALLBACK event.
 *
 * Only tasks whose tgid is in `pids` are traced, and only while cfg[0] != 0.
 * Ring-buffer reservation failures are counted in `lost` (per CPU) so user
 * space can refuse to compare a partial trace.
 */
#include <uapi/linux/ptrace.h>

/*
 * Structure offsets come from the running kernel's debug info (drgn), passed
 * as -D flags by the tracer, so no kernel header is parsed (compiling with
 * linux/mm_types.h takes minutes under TCG):
 *   OFF_VMA_START, OFF_VMA_END, OFF_VMA_MM   struct vm_area_struct
 *   OFF_WALK_VMA, OFF_WALK_ACTION            struct mm_walk
 *   OFF_OPS_WALK_LOCK                        struct mm_walk_ops (-1: no walk_lock, Linux 6.1)
 *   OPS_WORDS                                u64 words of struct mm_walk_ops that hold
 *                                            its callbacks (10 in 6.1/6.12, 11 in 7.2)
 */
#define RD(dst, base, off) bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)((u64)(base) + (off)))

#define EV_WALK_START 1
#define EV_WALK_END 2
#define EV_CALLBACK 3

#define MAX_OPS_WORDS 12 /* room in walk_start_ev for the ops struct's callbacks */
#define SLOT_INSTALL_PTE 10 /* callback slot ids: MM_WALK_CALLBACKS order */

#if OPS_WORDS > MAX_OPS_WORDS
#error "struct mm_walk_ops has more callbacks than walk_start_ev has room for"
#endif

struct walk_start_ev {
	u32 type;
	u32 fn;
	u32 tid;
	u32 tgid;
	u64 walk_id;
	u64 args[6];
	u64 vma_start;
	u64 vma_end;
	u64 vma_mm;
	u64 ops[MAX_OPS_WORDS];
	u64 walk_lock;
};

struct walk_end_ev {
	u32 type;
	u32 fn;
	u32 tid;
	u32 steps;
	u64 walk_id;
	s64 ret;
};

struct callback_ev {
	u32 type;
	u32 slot;
	u32 tid;
	u32 step;
	u64 walk_id;
	u64 ip;
	u64 ptr;
	u64 addr;
	u64 next;
	u64 arg;
	u64 val;
	s64 ret;
	u32 action_in;
	u32 action_out;
	u64 vma_start;
};

struct walk_state {
	u64 walk_id;
	u32 depth;
	u32 steps;
	u32 fn;
	u32 pad;
};

struct pending {
	u64 ip;
	u64 ptr;
	u64 addr;
	u64 next;
	u64 arg;
	u64 val;
	u64 walk;
	u64 vma_start;
	u32 slot;
	u32 action_in;
};

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_PERCPU_ARRAY(lost, u64, 1);
BPF_ARRAY(cfg, u64, 1);      /* [0] enabled */
BPF_HASH(walkctr, u32, u32, 1024); /* per-task walk counter (walk ids: tid << 32 | n) */
BPF_HASH(pids, u32, u8, 64);
BPF_HASH(wstate, u32, struct walk_state, 1024);
BPF_HASH(pend, u32, struct pending, 1024);

static __always_inline void count_lost(void)
{
	int zero = 0;
	u64 *n = lost.lookup(&zero);

	if (n)
		*n += 1;
}

static __always_inline int traced_task(void)
{
	int zero = 0;
	u64 *en = cfg.lookup(&zero);
	u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!en || !*en)
		return 0;
	return pids.lookup(&tgid) != NULL;
}

static __always_inline u64 parm(struct pt_regs *ctx, int i)
{
	switch (i) {
	case 0: return PT_REGS_PARM1(ctx);
	case 1: return PT_REGS_PARM2(ctx);
	case 2: return PT_REGS_PARM3(ctx);
	case 3: return PT_REGS_PARM4(ctx);
	case 4: return PT_REGS_PARM5(ctx);
	default: return PT_REGS_PARM6(ctx);
	}
}

/*
 * ops_arg: index of the `const struct mm_walk_ops *` argument;
 * vma_arg: index of a `struct vm_area_struct *` argument, or -1.
 */
static __always_inline int walk_enter(struct pt_regs *ctx, u32 fn, int ops_arg, int vma_arg)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct walk_state *st;
	struct walk_state nst = {};
	struct walk_start_ev *e;
	u32 zero32 = 0;
	u32 *ctr;
	u64 ops;
	int i;

	st = wstate.lookup(&tid);
	if (st && st->depth > 0) {
		st->depth += 1;
		return 0;
	}
	if (!traced_task())
		return 0;
	ctr = walkctr.lookup_or_try_init(&tid, &zero32);
	if (!ctr)
		return 0;
	*ctr += 1;
	nst.walk_id = ((u64)tid << 32) | *ctr;
	nst.depth = 1;
	nst.fn = fn;
	wstate.update(&tid, &nst);

	e = events.ringbuf_reserve(sizeof(*e));
	if (!e) {
		count_lost();
		return 0;
	}
	e->type = EV_WALK_START;
	e->fn = fn;
	e->tid = tid;
	e->tgid = bpf_get_current_pid_tgid() >> 32;
	e->walk_id = nst.walk_id;
	for (i = 0; i < 6; i++)
		e->args[i] = parm(ctx, i);
	e->vma_start = 0;
	e->vma_end = 0;
	e->vma_mm = 0;
	if (vma_arg >= 0) {
		u64 vma = parm(ctx, vma_arg);

		RD(e->vma_start, vma, OFF_VMA_START);
		RD(e->vma_end, vma, OFF_VMA_END);
		RD(e->vma_mm, vma, OFF_VMA_MM);
	}
	ops = parm(ctx, ops_arg);
	__builtin_memset(&e->ops, 0, sizeof(e->ops));
	bpf_probe_read_kernel(&e->ops, OPS_WORDS * sizeof(u64), (void *)ops);
	e->walk_lock = 0;
#if OFF_OPS_WALK_LOCK >= 0
	{
		u32 lock = 0;

		RD(lock, ops, OFF_OPS_WALK_LOCK);
		e->walk_lock = lock;
	}
#endif
	events.ringbuf_submit(e, 0);
	return 0;
}

static __always_inline int walk_exit(struct pt_regs *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct walk_state *st = wstate.lookup(&tid);
	struct walk_end_ev *e;

	if (!st || st->depth == 0)
		return 0;
	st->depth -= 1;
	if (st->depth > 0)
		return 0;
	e = events.ringbuf_reserve(sizeof(*e));
	if (!e) {
		count_lost();
	} else {
		e->type = EV_WALK_END;
		e->fn = st->fn;
		e->tid = tid;
		e->steps = st->steps;
		e->walk_id = st->walk_id;
		e->ret = (s64)(int)PT_REGS_RC(ctx);
		events.ringbuf_submit(e, 0);
	}
	wstate.delete(&tid);
	return 0;
}

#define ENTRY(NAME, FN, OPS_ARG, VMA_ARG) \
int kp_##NAME(struct pt_regs *ctx) { return walk_enter(ctx, FN, OPS_ARG, VMA_ARG); } \
int kr_##NAME(struct pt_regs *ctx) { return walk_exit(ctx); }

/* Function ids: keep in sync with ENTRY_POINTS in livewalk/crosscheck/model.py. */
ENTRY(walk_page_range, 1, 3, -1)
ENTRY(walk_page_range_mm_unsafe, 2, 3, -1)
ENTRY(walk_page_vma, 3, 1, 0)
ENTRY(walk_page_range_vma, 4, 3, 0)
ENTRY(walk_page_range_vma_unsafe, 5, 3, 0)
ENTRY(walk_page_mapping, 6, 3, -1)
ENTRY(walk_page_range_debug, 7, 3, -1)
ENTRY(walk_kernel_page_table_range, 8, 2, -1)
ENTRY(walk_kernel_page_table_range_lockless, 9, 2, -1)
ENTRY(walk_page_range_novma, 10, 3, -1)

/*
 * Callbacks. kind: 0 = (ptr, addr, next, walk) p?d/pte_entry; 1 = pte_hole
 * (addr, next, depth, walk); 2 = hugetlb_entry (pte, hmask, addr, next,
 * walk); 3 = test_walk / pre_vma (addr, next, walk); 4 = post_vma (walk);
 * 5 = install_pte (addr, next, ptep, walk).
 */
static __always_inline int cb_enter(struct pt_regs *ctx, u32 slot, int kind)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct walk_state *st = wstate.lookup(&tid);
	struct pending p = {};
	u64 vma = 0;

	if (!st || st->depth == 0)
		return 0;
	p.ip = PT_REGS_IP(ctx);
	p.slot = slot;
	switch (kind) {
	case 0:
		p.ptr = PT_REGS_PARM1(ctx);
		p.addr = PT_REGS_PARM2(ctx);
		p.next = PT_REGS_PARM3(ctx);
		p.walk = PT_REGS_PARM4(ctx);
		break;
	case 1:
		p.addr = PT_REGS_PARM1(ctx);
		p.next = PT_REGS_PARM2(ctx);
		p.arg = PT_REGS_PARM3(ctx);
		p.walk = PT_REGS_PARM4(ctx);
		break;
	case 2:
		p.ptr = PT_REGS_PARM1(ctx);
		p.arg = PT_REGS_PARM2(ctx);
		p.addr = PT_REGS_PARM3(ctx);
		p.next = PT_REGS_PARM4(ctx);
		p.walk = PT_REGS_PARM5(ctx);
		break;
	case 3:
		p.addr = PT_REGS_PARM1(ctx);
		p.next = PT_REGS_PARM2(ctx);
		p.walk = PT_REGS_PARM3(ctx);
		break;
	case 4:
		p.walk = PT_REGS_PARM1(ctx);
		break;
	default:
		p.addr = PT_REGS_PARM1(ctx);
		p.next = PT_REGS_PARM2(ctx);
		p.ptr = PT_REGS_PARM3(ctx);
		p.walk = PT_REGS_PARM4(ctx);
		break;
	}
	if (p.ptr && kind != 5)
		bpf_probe_read_kernel(&p.val, sizeof(u64), (void *)p.ptr);
	RD(p.action_in, p.walk, OFF_WALK_ACTION);
	RD(vma, p.walk, OFF_WALK_VMA);
	if (vma)
		RD(p.vma_start, vma, OFF_VMA_START);
	pend.update(&tid, &p);
	return 0;
}

int kr_callback(struct pt_regs *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct walk_state *st = wstate.lookup(&tid);
	struct pending *p = pend.lookup(&tid);
	struct callback_ev *e;
	u32 action = 0;

	if (!p)
		return 0;
	if (!st || st->depth == 0) {
		pend.delete(&tid);
		return 0;
	}
	RD(action, p->walk, OFF_WALK_ACTION);
	e = events.ringbuf_reserve(sizeof(*e));
	if (!e) {
		count_lost();
		st->steps += 1;
		pend.delete(&tid);
		return 0;
	}
	e->type = EV_CALLBACK;
	e->slot = p->slot;
	e->tid = tid;
	e->step = st->steps;
	e->walk_id = st->walk_id;
	e->ip = p->ip;
	e->ptr = p->ptr;
	e->addr = p->addr;
	e->next = p->next;
	e->arg = p->arg;
	e->val = p->val;
	if (p->slot == SLOT_INSTALL_PTE && p->ptr)
		bpf_probe_read_kernel(&e->val, sizeof(u64), (void *)p->ptr);
	e->ret = (s64)(int)PT_REGS_RC(ctx);
	e->action_in = p->action_in;
	e->action_out = action;
	e->vma_start = p->vma_start;
	events.ringbuf_submit(e, 0);
	st->steps += 1;
	pend.delete(&tid);
	return 0;
}

#define CALLBACK(SLOTNAME, SLOT, KIND) \
int kp_cb_##SLOTNAME(struct pt_regs *ctx) { return cb_enter(ctx, SLOT, KIND); }

/*
 * Slots in Linux 7.2's struct mm_walk_ops order (include/linux/pagewalk.h);
 * a kernel without a member (install_pte before 6.13) just never attaches it.
 */
CALLBACK(pgd_entry, 0, 0)
CALLBACK(p4d_entry, 1, 0)
CALLBACK(pud_entry, 2, 0)
CALLBACK(pmd_entry, 3, 0)
CALLBACK(pte_entry, 4, 0)
CALLBACK(pte_hole, 5, 1)
CALLBACK(hugetlb_entry, 6, 2)
CALLBACK(test_walk, 7, 3)
CALLBACK(pre_vma, 8, 3)
CALLBACK(post_vma, 9, 4)
CALLBACK(install_pte, 10, 5)
