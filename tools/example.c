#include <socketloop.h>
#include <stdio.h>

static gt_chan *ch;
static char who[] = "consumer";

static void producer(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 3; i++)
        gt_chan_send(ch, &i, -1);        /* parks until the consumer takes it */
    gt_chan_close(ch);
}

static void consumer(void *arg)
{
    int v;
    while (gt_chan_recv(ch, &v, gt_now() + 1000) == 0)   /* 1 s deadline */
        printf("%s got %d\n", (const char *)arg, v);
}

int main(void)
{
    gt_chan_make(&ch, sizeof(int), 0);    /* unbuffered */
    gt_spawn(producer, NULL);
    gt_spawn(consumer, who);
    int rc = gt_run();                    /* returns when every green thread has ended */
    gt_chan_free(ch);
    return rc < 0 ? (fprintf(stderr, "%s\n", gt_strerror(rc)), 1) : 0;
}
